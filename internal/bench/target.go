package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/rlimit"
)

// benchTarget is the server under load.
type benchTarget struct {
	// base is the server's URL without a trailing slash.
	base string
	// server is the spawned server; nil with --url. With --nats-cluster
	// it is the cluster's first node.
	server *spawnedServer
	// cluster is the spawned cluster of --nats-cluster, else nil.
	cluster *benchCluster
	// bases, when set, spread the subscribers: loader i connects to
	// bases[i mod len(bases)] instead of base.
	bases  []string
	dialer *benchDialer
	// stderr receives the log of a spawned server that died.
	stderr io.Writer
}

// openTarget starts the server (--spawn) or checks the one at --url, and
// raises this process's open-files limit. conns is how many connections
// the scenario will open.
func openTarget(ctx context.Context, c *benchCommon, conns int, stderr io.Writer) (*benchTarget, error) {
	if soft, hard, err := rlimit.RaiseOpenFiles(); err != nil {
		fmt.Fprintf(stderr, "bench: cannot raise the open-files limit: %v\n", err)
	} else if need := uint64(conns) + 256; soft < need {
		fmt.Fprintf(stderr, "bench: warning: the open-files limit is %d (hard %d), below the %d this run needs\n", soft, hard, need)
	}
	t := &benchTarget{base: strings.TrimSuffix(c.url, "/"), stderr: stderr}
	switch {
	case c.spawn && c.natsCluster:
		cl, err := startCluster(ctx, c.cmd.executable, c.clusterNodes(), conns, c.serverArgs, stderr)
		if err != nil {
			return nil, err
		}
		t.cluster, t.server, t.base = cl, cl.nodes[0], "http://"+cl.nodes[0].addr
	case c.spawn:
		s, err := spawnServer(ctx, c.cmd.executable, conns, c.serverArgs, stderr)
		if err != nil {
			return nil, err
		}
		t.server, t.base = s, "http://"+s.addr
	}
	if err := t.setDialer(c, conns); err != nil {
		return nil, err
	}
	return t, nil
}

// openBaseline spawns the raw broadcaster as the target of conns
// connections.
func openBaseline(ctx context.Context, c *benchCommon, conns int, stderr io.Writer) (*benchTarget, error) {
	rlimit.RaiseOpenFiles()
	exe, err := c.cmd.executable()
	if err != nil {
		return nil, fmt.Errorf("spawn: %w", err)
	}
	s, err := spawnProcess(ctx, exe, []string{"bench", "baseline-server", "--addr", "127.0.0.1:0"}, "", "baseline broadcaster", stderr)
	if err != nil {
		return nil, err
	}
	t := &benchTarget{base: "http://" + s.addr, server: s, stderr: stderr}
	if err := t.setDialer(c, conns); err != nil {
		return nil, err
	}
	return t, nil
}

// openRun opens the target of one measured run: a fresh raw broadcaster
// for a baseline's, else the server (a fresh one with --spawn).
func openRun(ctx context.Context, c *benchCommon, m measurement, conns int, stderr io.Writer) (*benchTarget, error) {
	if m.baseline {
		return openBaseline(ctx, c, conns, stderr)
	}
	return openTarget(ctx, c, conns, stderr)
}

// setDialer gives the target the dialer of conns connections, from the
// source addresses of --source-ips or their default; on an error it
// closes the target.
func (t *benchTarget) setDialer(c *benchCommon, conns int) error {
	host := strings.TrimPrefix(strings.TrimPrefix(t.base, "http://"), "https://")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ips, err := sourceIPs(c.sourceIPs, conns, host)
	if err != nil {
		t.close()
		return fmt.Errorf("%w: --source-ips: %w", cliflag.ErrBadFlag, err)
	}
	t.dialer = newBenchDialer(ips)
	return nil
}

// close stops a spawned server and drops idle connections. A spawned
// server that exited on its own has its log's end shown.
func (t *benchTarget) close() {
	if t.dialer != nil {
		t.dialer.closeIdle()
	}
	if t.cluster != nil {
		t.cluster.stop(t.stderr)
		return
	}
	if t.server != nil && t.server.stop() {
		fmt.Fprintf(t.stderr, "bench: the spawned server exited during the run (%v); the end of its log:\n%s\n", t.server.cmd.ProcessState, t.server.stderr)
	}
}

// head returns the head of a report of the scenario against the target,
// over transport (none for plain requests).
func (t *benchTarget) head(scenario, transport string) reportHead {
	return reportHead{Scenario: scenario, Transport: transport, URL: t.base, Spawned: t.server != nil}
}

// keepAliveClient returns a client that keeps up to conns connections to
// the target open between requests.
func (t *benchTarget) keepAliveClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         t.dialer.dial,
		DisableCompression:  true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
	}, Timeout: 30 * time.Second}
}

// serverStats reads the spawned server's figures.
func (t *benchTarget) serverStats() (procStats, error) {
	if t.server == nil {
		return procStats{}, errors.New("no spawned server")
	}
	return readProc(strconv.Itoa(t.server.pid()))
}

// serverWindow measures the spawned server between begin and end; with
// --url it measures nothing.
type serverWindow struct {
	t      *benchTarget
	before procStats
	err    error
}

func (t *benchTarget) beginWindow() *serverWindow {
	w := &serverWindow{t: t}
	w.before, w.err = t.serverStats()
	return w
}

// end returns the figures since begin, with the CPU time spread over ops;
// nil without a spawned server.
func (w *serverWindow) end(ops int64) *opsServer {
	if w.t.server == nil || w.err != nil {
		return nil
	}
	after, err := w.t.serverStats()
	if err != nil {
		return nil
	}
	return serverFigures(w.t.server.pid(), after.cpu-w.before.cpu, after, ops)
}

// sourceIPs returns the local addresses to dial from: those listed in
// spec, or by default (spec empty) 127.0.0.1 for fewer than 10000
// connections to a loopback host and the eight addresses 127.0.0.2-9 from
// 10000 on. For a host that is not a loopback address the default is none:
// the system chooses.
func sourceIPs(spec string, conns int, host string) ([]net.IP, error) {
	if strings.TrimSpace(spec) == "" {
		ip := net.ParseIP(host)
		if host == "localhost" {
			ip = net.IPv4(127, 0, 0, 1)
		}
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
			return nil, nil
		}
		if conns < 10000 {
			return []net.IP{net.IPv4(127, 0, 0, 1)}, nil
		}
		return parseSourceIPs("127.0.0.2-9")
	}
	return parseSourceIPs(spec)
}

// parseSourceIPs parses a comma-separated list of IPs and IPv4 ranges
// written A.B.C.D-E (last octet D to E).
func parseSourceIPs(spec string) ([]net.IP, error) {
	var ips []net.IP
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		first, last, isRange := strings.Cut(part, "-")
		ip := net.ParseIP(first)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", first)
		}
		if !isRange {
			ips = append(ips, ip)
			continue
		}
		v4 := ip.To4()
		end, err := strconv.Atoi(last)
		if v4 == nil || err != nil || end < int(v4[3]) || end > 255 {
			return nil, fmt.Errorf("%q is not a range like 127.0.0.2-9", part)
		}
		for o := int(v4[3]); o <= end; o++ {
			ips = append(ips, net.IPv4(v4[0], v4[1], v4[2], byte(o)))
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no address given")
	}
	return ips, nil
}
