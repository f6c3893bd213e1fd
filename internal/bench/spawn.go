package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// spawnedServer is a 'viewsync serve' the bench started: this same
// executable, on a fresh data directory, listening on a port of the
// system's choosing on 127.0.0.1.
type spawnedServer struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	// stderr keeps the end of the server's log, for errors.
	stderr *tailBuffer
	// exited is closed once the process has exited and been waited for.
	exited chan struct{}
}

// spawnServer starts the server, 'EXE serve' with the program that
// program returns, and returns once it has said where it listens. Its
// connection limits are raised to fit conns; its logs below warnings are
// off. The rest of its settings come from the environment,
// as for any 'viewsync serve', or from extra, added to its command line.
func spawnServer(ctx context.Context, program func() (string, error), conns int, extra []string, stderr io.Writer) (*spawnedServer, error) {
	exe, err := program()
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	dir, err := os.MkdirTemp("", "viewsync-bench-")
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	limit := strconv.Itoa(max(10000, conns+1000))
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--log-level", "warn",
		"--max-sse-connections", limit, "--max-ws-connections", limit,
		// The bench measures the engine, not the per-client limits.
		"--max-conns-per-ip", "0", "--commit-rate", "0", "--call-rate", "0"}, extra...)
	return spawnProcess(ctx, exe, args, dir, "server", stderr)
}

// spawnProcess starts exe with args, a server of some kind (what) that
// says where it listens on its stdout as 'viewsync listening on
// http://ADDR', and returns once it has. dir, if not empty, is removed
// when it stops.
func spawnProcess(ctx context.Context, exe string, args []string, dir, what string, stderr io.Writer) (*spawnedServer, error) {
	cmd := exec.Command(exe, args...)
	s := &spawnedServer{cmd: cmd, dir: dir, stderr: &tailBuffer{max: 64 << 10}, exited: make(chan struct{})}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		s.removeDir()
		return nil, fmt.Errorf("spawn: %w", err)
	}
	if err := cmd.Start(); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("spawn: %w", err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "viewsync listening on http://"); ok {
				select {
				case addrc <- a:
				default:
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(s.exited)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case s.addr = <-addrc:
		where := ""
		if dir != "" {
			where = ", data in " + dir
		}
		fmt.Fprintf(stderr, "bench: spawned %s pid %d at http://%s%s\n", what, cmd.Process.Pid, s.addr, where)
		return s, nil
	case <-s.exited:
		err = fmt.Errorf("spawned %s exited before listening: %v\n%s", what, cmd.ProcessState, s.stderr)
	case <-timer.C:
		err = fmt.Errorf("spawned %s did not say where it listens within 30s\n%s", what, s.stderr)
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.stop()
	return nil, err
}

// pid returns the server's process id.
func (s *spawnedServer) pid() int { return s.cmd.Process.Pid }

// stop ends the server and removes its data directory. It reports
// whether the server had already exited, which it should not have.
func (s *spawnedServer) stop() (exitedEarly bool) {
	select {
	case <-s.exited:
		exitedEarly = true
	default:
		s.terminate()
	}
	s.removeDir()
	return exitedEarly
}

// terminate ends the server: SIGTERM, then SIGKILL after 15s.
func (s *spawnedServer) terminate() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// removeDir removes the data directory, if any.
func (s *spawnedServer) removeDir() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// respawn stops the spawned server and starts it again, the same
// executable with the same arguments, on the same data; the target then
// points at the new one.
func respawn(ctx context.Context, t *benchTarget, stderr io.Writer) error {
	old := t.server
	t.dialer.closeIdle()
	old.terminate()
	if !old.cmd.ProcessState.Success() {
		t.server = nil
		old.removeDir()
		return fmt.Errorf("the spawned server ended with %v; the end of its log:\n%s", old.cmd.ProcessState, old.stderr)
	}
	s, err := spawnProcess(ctx, old.cmd.Path, old.cmd.Args[1:], old.dir, "server", stderr)
	if err != nil {
		t.server = nil
		old.removeDir()
		return err
	}
	t.server, t.base = s, "http://"+s.addr
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
