package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
)

// healthUsage is the help of 'viewsync health'.
const healthUsage = `Usage: viewsync health [--addr HOST:PORT] [--live] [--timeout D]

Asks a server on this machine whether it is ready (GET /readyz; with --live,
whether it is alive: GET /healthz) and exits 0 when it answers 200, else 1
with the reason. For container health checks, where no HTTP client may be
installed. --addr reads VIEWSYNC_ADDR, as 'viewsync serve' does, so one
environment configures both; an address on every interface (0.0.0.0:8080,
:8080) is asked on loopback.

Flags (each also set by the environment variable shown; the command line wins):
`

// healthConfig holds the flags of 'viewsync health'.
type healthConfig struct {
	addr    string
	live    bool
	timeout time.Duration
}

// health runs 'viewsync health'.
func health(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &healthConfig{}
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address the server listens on (host:port), as given to 'viewsync serve'")
	fs.BoolVar(&c.live, "live", false, "ask /healthz (the process is alive) instead of /readyz (it takes traffic)")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Second, "time the server has to answer")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), healthUsage)
		cliflag.PrintFlags(fs.Output(), fs, nil)
	}
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	if c.timeout <= 0 {
		return fmt.Errorf("%w: --timeout must be positive", cliflag.ErrBadFlag)
	}
	u, err := healthURL(c.addr, c.live)
	if err != nil {
		return fmt.Errorf("%w: --addr: %w", cliflag.ErrBadFlag, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %v", u, c.timeout)
		}
		return fmt.Errorf("%s: %w", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", u, resp.Status)
	return nil
}

// healthURL returns the URL of the health endpoint of a server listening
// on addr, asked on loopback when addr names every interface.
func healthURL(addr string, live bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "" {
		return "", fmt.Errorf("%q has no port", addr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	path := "/readyz"
	if live {
		path = "/healthz"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}
