package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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

// stop ends the server (SIGTERM, then SIGKILL after 15s) and removes its
// data directory. It reports whether the server had already exited, which
// it should not have.
func (s *spawnedServer) stop() (exitedEarly bool) {
	select {
	case <-s.exited:
		exitedEarly = true
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
	}
	s.removeDir()
	return exitedEarly
}

// removeDir removes the data directory, if any.
func (s *spawnedServer) removeDir() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// procStats are a process's figures from /proc.
type procStats struct {
	// cpu is user plus system time.
	cpu time.Duration
	// rss is the resident set size (VmRSS), hwm its peak (VmHWM), in bytes.
	rss, hwm uint64
}

// clockTicks is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100
// on every Linux platform.
const clockTicks = 100

// readProc reads the figures of process pid ("self" for this one).
func readProc(pid string) (procStats, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStats{}, err
	}
	ticks, err := parseProcStat(stat)
	if err != nil {
		return procStats{}, err
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procStats{}, err
	}
	st := procStats{cpu: time.Duration(ticks) * time.Second / clockTicks}
	if st.rss, err = parseProcStatus(status, "VmRSS"); err != nil {
		return procStats{}, err
	}
	if st.hwm, err = parseProcStatus(status, "VmHWM"); err != nil {
		return procStats{}, err
	}
	return st, nil
}

// parseProcStat returns utime+stime, in clock ticks, from the text of
// /proc/PID/stat. The command name, in parentheses, may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func parseProcStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	// After the name: field 3 (state) onwards; utime is field 14, stime 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return utime + stime, nil
}

// parseProcStatus returns the value of a "Key:   N kB" line of
// /proc/PID/status, in bytes.
func parseProcStatus(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: %s: %q", key, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: %s: %w", key, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("/proc status: no %s", key)
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
