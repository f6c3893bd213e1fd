package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// runCmd runs the command line args in process and returns its exit code,
// stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// clearEnv unsets every VIEWSYNC_ variable for the test, so that the
// environment the tests run in does not change what they see.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "VIEWSYNC_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		code, stdout, stderr := runCmd(t, arg)
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit %d, stderr %q", arg, code, stderr)
		}
		if !strings.HasPrefix(stdout, "viewsync ") || !strings.Contains(stdout, runtime.Version()) ||
			strings.Count(stdout, "\n") != 1 {
			t.Errorf("%s: printed %q, want one line: viewsync VERSION GOVERSION OS/ARCH", arg, stdout)
		}
	}
}

func TestUsage(t *testing.T) {
	code, stdout, stderr := runCmd(t)
	if code != 2 || stdout != "" || !strings.Contains(stderr, "Usage:") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout, stderr)
	}
	for _, arg := range []string{"help", "-h", "--help"} {
		code, stdout, stderr := runCmd(t, arg)
		if code != 0 || stderr != "" || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "serve") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", arg, code, stdout, stderr)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "frobnicate", "--addr", ":1")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if stdout != "" || !strings.Contains(stderr, `unknown command "frobnicate"`) || !strings.Contains(stderr, "Usage:") {
		t.Errorf("stdout %q, stderr %q; want the error and the usage on stderr", stdout, stderr)
	}
}

// TestServeRejectsBadFlags checks that bad flag or environment values stop
// serve before it touches anything, with an error naming the culprit.
func TestServeRejectsBadFlags(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		// parse marks errors of the flag syntax itself, which exit 2.
		parse bool
		want  string
	}{
		{name: "max-id over 256", args: []string{"--max-id", "300"}, want: "--max-id"},
		{name: "max-id zero", args: []string{"--max-id", "0"}, want: "--max-id"},
		{name: "max-id not a number", args: []string{"--max-id", "abc"}, parse: true, want: "max-id"},
		{name: "log-format xml", args: []string{"--log-format", "xml"}, want: "--log-format"},
		{name: "log-level loud", args: []string{"--log-level", "loud"}, want: "--log-level"},
		{name: "max-wait over 60s", args: []string{"--max-wait", "61s"}, want: "--max-wait"},
		{name: "max-wait zero", args: []string{"--max-wait", "0s"}, want: "--max-wait"},
		{name: "flush-interval negative", args: []string{"--flush-interval", "-1ms"}, want: "--flush-interval"},
		{name: "page-size zero", args: []string{"--page-size", "0"}, want: "--page-size"},
		{name: "max-ops negative", args: []string{"--max-ops", "-1"}, want: "--max-ops"},
		{name: "retain-commits zero", args: []string{"--retain-commits", "0"}, want: "--retain-commits"},
		{name: "retain-tombstones zero", args: []string{"--retain-tombstones", "0s"}, want: "--retain-tombstones"},
		{name: "max-body zero", args: []string{"--max-body", "0"}, want: "--max-body"},
		{name: "max-body bad unit", args: []string{"--max-body", "1XB"}, parse: true, want: "max-body"},
		{name: "max-value negative", args: []string{"--max-value", "-1"}, parse: true, want: "max-value"},
		{name: "max-value-depth zero", args: []string{"--max-value-depth", "0"}, want: "--max-value-depth"},
		{name: "max-value-depth over 512", args: []string{"--max-value-depth", "513"}, want: "--max-value-depth"},
		{name: "max-commit zero", args: []string{"--max-commit", "0"}, want: "--max-commit"},
		{name: "page-bytes zero", args: []string{"--page-bytes", "0"}, want: "--page-bytes"},
		{name: "history-memory below a page", args: []string{"--page-bytes", "4MiB", "--history-memory", "1MiB"}, want: "--history-memory"},
		{name: "history-wait zero", args: []string{"--history-wait", "0s"}, want: "--history-wait"},
		{name: "unknown flag", args: []string{"--no-such-flag"}, parse: true, want: "no-such-flag"},
		{name: "stray argument", args: []string{"extra"}, parse: true, want: `unexpected argument "extra"`},
		{name: "env max-id over 256", env: map[string]string{"VIEWSYNC_MAX_ID": "300"}, want: "--max-id"},
		{name: "env max-wait not a duration", env: map[string]string{"VIEWSYNC_MAX_WAIT": "soon"}, want: "VIEWSYNC_MAX_WAIT"},
		{name: "env log-format", env: map[string]string{"VIEWSYNC_LOG_FORMAT": "xml"}, want: "--log-format"},
		{name: "nats-max-backlog zero", args: []string{"--nats-max-backlog", "0"}, want: "--nats-max-backlog"},
		{name: "env nats-max-backlog negative", env: map[string]string{"VIEWSYNC_NATS_MAX_BACKLOG": "-1"}, want: "--nats-max-backlog"},
		{name: "nats-log-cache zero", args: []string{"--nats-log-cache", "0"}, want: "--nats-log-cache"},
		{name: "env nats-log-cache not a size", env: map[string]string{"VIEWSYNC_NATS_LOG_CACHE": "lots"}, want: "VIEWSYNC_NATS_LOG_CACHE"},
		{name: "nats-record-cache zero", args: []string{"--nats-record-cache", "0"}, want: "--nats-record-cache"},
		{name: "env nats-record-cache not a size", env: map[string]string{"VIEWSYNC_NATS_RECORD_CACHE": "lots"}, want: "VIEWSYNC_NATS_RECORD_CACHE"},
		{name: "nats-record-index zero", args: []string{"--nats-record-index", "0"}, want: "--nats-record-index"},
		{name: "env nats-record-index not a number", env: map[string]string{"VIEWSYNC_NATS_RECORD_INDEX": "lots"}, want: "VIEWSYNC_NATS_RECORD_INDEX"},
		{name: "presence-set-rate zero", args: []string{"--presence-set-rate", "0"}, want: "--presence-set-rate"},
		{name: "presence-set-rate NaN", args: []string{"--presence-set-rate", "NaN"}, want: "--presence-set-rate"},
		{name: "env presence-set-rate negative", env: map[string]string{"VIEWSYNC_PRESENCE_SET_RATE": "-1"}, want: "--presence-set-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, tt.args...)
			code, stdout, stderr := runCmd(t, args...)
			if code == 0 || (tt.parse && code != 2) {
				t.Errorf("exit %d, want %s", code, map[bool]string{true: "2", false: "non-zero"}[tt.parse])
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not name %q:\n%s", tt.want, stderr)
			}
			if strings.Contains(stdout, "listening") {
				t.Errorf("it started serving: %q", stdout)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("it created the data directory (%v)", err)
			}
		})
	}
}

// startServe runs `serve` in process with args and returns the address it
// says it listens on, its stderr, and a function that stops it (as SIGTERM
// would) and returns its exit code.
func startServe(t *testing.T, args ...string) (addr string, stderr *lockedBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	stderr = &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, append([]string{"serve"}, args...), pw, stderr)
		pw.Close()
		done <- code
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var code int
	stopped := false
	stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			for range lines {
			}
			code = <-done
		}
		return code
	}
	t.Cleanup(func() { stop() })
	line, ok := <-lines
	if !ok {
		t.Fatalf("serve exited without listening (exit %d):\n%s", stop(), stderr)
	}
	addr, ok = strings.CutPrefix(line, "viewsync listening on http://")
	if !ok {
		t.Fatalf("serve printed %q, want viewsync listening on http://ADDR", line)
	}
	go func() {
		for range lines {
		}
	}()
	return addr, stderr, stop
}

// getOK fails the test unless a GET of url answers 200.
func getOK(t *testing.T, url string) {
	t.Helper()
	getText(t, url)
}

// TestServeEnv checks that serve takes its flags from VIEWSYNC_*
// variables, and that the command line wins over them.
func TestServeEnv(t *testing.T) {
	clearEnv(t)
	t.Run("addr and log format from the environment", func(t *testing.T) {
		t.Setenv("VIEWSYNC_ADDR", "127.0.0.1:0")
		t.Setenv("VIEWSYNC_LOG_FORMAT", "json")
		dir := filepath.Join(t.TempDir(), "data")
		addr, stderr, stop := startServe(t, "--data", dir)
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" || port == "0" || port == "8080" {
			t.Fatalf("listening on %q; want 127.0.0.1 on a port of the system's choosing, as VIEWSYNC_ADDR says", addr)
		}
		getOK(t, "http://"+addr+"/healthz")
		getOK(t, "http://"+addr+"/readyz")
		if code := stop(); code != 0 {
			t.Fatalf("exit %d after stop, want 0:\n%s", code, stderr)
		}
		serving := false
		for line := range strings.Lines(strings.TrimSpace(stderr.String())) {
			var entry struct{ Msg string }
			if err := json.Unmarshal([]byte(line), &entry); err != nil {
				t.Errorf("log line %q is not JSON (VIEWSYNC_LOG_FORMAT=json): %v", line, err)
			}
			serving = serving || entry.Msg == "viewsync serving"
		}
		if !serving {
			t.Errorf("no log line says viewsync serving:\n%s", stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "viewsync.db")); err != nil {
			t.Errorf("no store in the data directory: %v", err)
		}
	})
	t.Run("the command line wins", func(t *testing.T) {
		t.Setenv("VIEWSYNC_ADDR", "not an address")
		t.Setenv("VIEWSYNC_MAX_ID", "300")
		addr, stderr, stop := startServe(t, "--addr", "127.0.0.1:0", "--max-id", "16", "--data", t.TempDir())
		getOK(t, "http://"+addr+"/healthz")
		if code := stop(); code != 0 {
			t.Fatalf("exit %d after stop, want 0:\n%s", code, stderr)
		}
	})
}

// TestPprofOnItsOwnAddress: --pprof serves the profiler on its own
// listener, never on the API's.
func TestPprofOnItsOwnAddress(t *testing.T) {
	clearEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := l.Addr().String()
	l.Close()
	addr, _, stop := startServe(t, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--pprof", pprofAddr)
	status := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status("http://" + pprofAddr + "/debug/pprof/"); got != http.StatusOK {
		t.Errorf("profiler address: status %d, want 200", got)
	}
	if got := status("http://" + addr + "/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("API address serves the profiler: status %d, want 404", got)
	}
	if code := stop(); code != 0 {
		t.Errorf("serve exited %d", code)
	}
}
