package bench

// The loader process: its parent's side (procGroup) and its own
// (loaderConfig).

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/rlimit"
)

// loaderMsg is a line a loader process writes.
type loaderMsg struct {
	Type        string       `json:"type"` // tick, ready, drained, result
	Tick        *groupTick   `json:"tick,omitempty"`
	Established int          `json:"established,omitempty"`
	Result      *groupResult `json:"result,omitempty"`
}

// loaderCmd is a line a loader process reads.
type loaderCmd struct {
	Cmd  string `json:"cmd"` // drain, stop
	Last uint64 `json:"last,omitempty"`
	// Lasts are the views' last versions, for a drain with --views.
	Lasts   []uint64 `json:"lasts,omitempty"`
	Timeout string   `json:"timeout,omitempty"`
}

// procGroup is subscribers in a loader process.
type procGroup struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	n      int
	stderr *tailBuffer

	mu     sync.Mutex
	tk     []groupTick
	latest groupTick

	readyc   chan struct{}
	drainedc chan struct{}
	resultc  chan *groupResult
	exited   chan struct{}
	once     sync.Once
}

func startProcGroup(exe string, args []string, n int) (*procGroup, error) {
	cmd := exec.Command(exe, args...)
	g := &procGroup{cmd: cmd, n: n, stderr: &tailBuffer{max: 16 << 10},
		readyc: make(chan struct{}), drainedc: make(chan struct{}, 1), resultc: make(chan *groupResult, 1), exited: make(chan struct{})}
	cmd.Stderr = g.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if g.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var m loaderMsg
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch m.Type {
			case "tick":
				if m.Tick != nil {
					g.mu.Lock()
					g.tk = append(g.tk, *m.Tick)
					g.latest = *m.Tick
					g.mu.Unlock()
				}
			case "ready":
				g.mu.Lock()
				g.latest.Connected = max(g.latest.Connected, int64(m.Established))
				g.mu.Unlock()
				g.once.Do(func() { close(g.readyc) })
			case "drained":
				select {
				case g.drainedc <- struct{}{}:
				default:
				}
			case "result":
				if m.Result != nil {
					g.resultc <- m.Result
				}
			}
		}
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		g.once.Do(func() { close(g.readyc) })
		close(g.exited)
	}()
	return g, nil
}

func (g *procGroup) ready() <-chan struct{} { return g.readyc }
func (g *procGroup) pid() int               { return g.cmd.Process.Pid }

func (g *procGroup) status() groupTick {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.latest
}

func (g *procGroup) ticks() []groupTick {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.tk)
}

func (g *procGroup) send(c loaderCmd) error {
	b, _ := json.Marshal(c)
	_, err := g.stdin.Write(append(b, '\n'))
	return err
}

// died describes a loader that ended before it was done.
func (g *procGroup) died() error {
	return fmt.Errorf("loader pid %d exited (%v); the end of its log:\n%s", g.pid(), g.cmd.ProcessState, g.stderr)
}

func (g *procGroup) drain(ctx context.Context, last uint64, lasts []uint64, d time.Duration) error {
	if err := g.send(loaderCmd{Cmd: "drain", Last: last, Lasts: lasts, Timeout: d.String()}); err != nil {
		return g.died()
	}
	select {
	case <-g.drainedc:
		return nil
	case <-g.exited:
		return g.died()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *procGroup) finish() (*groupResult, error) {
	g.send(loaderCmd{Cmd: "stop"})
	g.stdin.Close()
	var res *groupResult
	select {
	case res = <-g.resultc:
	case <-g.exited:
		select {
		case res = <-g.resultc:
		default:
			return nil, g.died()
		}
	case <-time.After(time.Minute):
		g.kill()
		return nil, fmt.Errorf("loader pid %d did not report within a minute", g.pid())
	}
	select {
	case <-g.exited:
	case <-time.After(30 * time.Second):
		g.kill()
	}
	return res, nil
}

func (g *procGroup) kill() {
	select {
	case <-g.exited:
	default:
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// loaderUsage is the help of the hidden 'viewsync bench loader'.
const loaderUsage = "Usage: viewsync bench loader [flags]\n\nA share of the subscribers of 'viewsync bench fanout' or 'idle', run by them in a process of its own; not for use by hand.\n\n"

// loaderConfig holds the flags of 'viewsync bench loader', the hidden
// loader process.
type loaderConfig struct {
	benchCommon
	subscribers int
	record      bool
}

// runLoader runs 'viewsync bench loader', the hidden loader process,
// with the flags its parent gives it.
func runLoader(ctx context.Context, cmd *Command, args []string, stdout, stderr io.Writer) error {
	c := &loaderConfig{benchCommon: defaultCommon(cmd)}
	fs := newFlagSet("bench loader", loaderUsage, stderr)
	fs.StringVar(&c.url, "url", "", "base URL of the server")
	fs.StringVar(&c.transport, "transport", c.transport, "sse or ws")
	fs.StringVar(&c.collection, "collection", c.collection, "the collection subscribed to")
	fs.IntVar(&c.subscribers, "subscribers", 1, "subscribers")
	fs.IntVar(&c.views, "views", 0, "views the subscribers are spread over, by their number (0: the whole collection)")
	fs.IntVar(&c.colls, "collections", 0, "collections NAME-K the subscribers are spread over, by their number (0: --collection)")
	fs.IntVar(&c.first, "first", 0, "number of this loader's first subscriber")
	fs.StringVar(&c.sourceIPs, "source-ips", "", "local addresses, comma-separated (default: the system's choice)")
	fs.IntVar(&c.dialParallel, "dial-parallel", c.dialParallel, "connections being set up at once")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", c.connectTimeout, "time one connection has to be set up")
	fs.BoolVar(&c.record, "record", true, "keep the latencies")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return err
	}
	return c.run(ctx, stdout, stderr)
}

// check checks the flags once parsed.
func (c *loaderConfig) check(*flag.FlagSet) error {
	return checkFlags(check{c.subscribers <= 0, "--subscribers must be positive"},
		check{c.views < 0 || c.colls < 0 || c.first < 0, "--views, --collections and --first must not be negative"})
}

// run connects the loader's subscribers and speaks with its parent: its
// commands on stdin, the subscribers' ticks and results on stdout.
func (c *loaderConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	rlimit.RaiseOpenFiles()
	var ips []net.IP
	if strings.TrimSpace(c.sourceIPs) != "" {
		var err error
		if ips, err = parseSourceIPs(c.sourceIPs); err != nil {
			return fmt.Errorf("%w: --source-ips: %w", cliflag.ErrBadFlag, err)
		}
	}
	t := &benchTarget{base: strings.TrimSuffix(c.url, "/"), dialer: newBenchDialer(ips), stderr: stderr}
	defer t.close()

	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	send := func(m loaderMsg) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(m)
	}
	g := startLocalGroup(ctx, t, &c.benchCommon, c.subscribers, c.record, func(tk groupTick) { send(loaderMsg{Type: "tick", Tick: &tk}) }, stderr)
	go func() {
		select {
		case <-g.ready():
			send(loaderMsg{Type: "ready", Established: int(g.setup.ready.Load())})
		case <-ctx.Done():
		}
	}()
	dec := json.NewDecoder(c.cmd.stdin())
	for {
		var msg loaderCmd
		if err := dec.Decode(&msg); err != nil {
			break // the parent is gone, or done
		}
		if msg.Cmd == "stop" {
			break
		}
		if msg.Cmd == "drain" {
			d, err := time.ParseDuration(msg.Timeout)
			if err != nil {
				d = 15 * time.Second
			}
			g.drain(ctx, msg.Last, msg.Lasts, d)
			send(loaderMsg{Type: "drained"})
		}
	}
	res, err := g.finish()
	if err != nil {
		return err
	}
	send(loaderMsg{Type: "result", Result: res})
	return nil
}
