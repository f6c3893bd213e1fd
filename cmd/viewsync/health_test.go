package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthURL(t *testing.T) {
	tests := []struct {
		addr string
		live bool
		want string
		bad  bool
	}{
		{addr: "127.0.0.1:8080", want: "http://127.0.0.1:8080/readyz"},
		{addr: "0.0.0.0:8080", want: "http://127.0.0.1:8080/readyz"},
		{addr: ":9000", live: true, want: "http://127.0.0.1:9000/healthz"},
		{addr: "[::]:8080", want: "http://[::1]:8080/readyz"},
		{addr: "[::1]:8080", want: "http://[::1]:8080/readyz"},
		{addr: "viewsync.internal:80", want: "http://viewsync.internal:80/readyz"},
		{addr: "8080", bad: true},
		{addr: "127.0.0.1:", bad: true},
		{addr: "", bad: true},
	}
	for _, tt := range tests {
		got, err := healthURL(tt.addr, tt.live)
		if tt.bad {
			if err == nil {
				t.Errorf("healthURL(%q) = %q, want an error", tt.addr, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("healthURL(%q, %v) = %q, %v; want %q", tt.addr, tt.live, got, err, tt.want)
		}
	}
}

// TestHealth asks a real server, in process, and servers that are not
// ready or not there: exit 0 only for a 200.
func TestHealth(t *testing.T) {
	clearEnv(t)
	addr, _, _ := startServe(t, "--data", t.TempDir(), "--addr", "127.0.0.1:0")

	if code, stdout, stderr := runCmd(t, "health", "--addr", addr); code != 0 || !strings.Contains(stdout, "/readyz: 200 OK") {
		t.Errorf("health --addr %s: exit %d, stdout %q, stderr %q; want 0 and 200 OK", addr, code, stdout, stderr)
	}
	if code, stdout, _ := runCmd(t, "health", "--addr", addr, "--live"); code != 0 || !strings.Contains(stdout, "/healthz: 200 OK") {
		t.Errorf("health --live: exit %d, stdout %q", code, stdout)
	}
	t.Setenv("VIEWSYNC_ADDR", addr)
	if code, stdout, stderr := runCmd(t, "health"); code != 0 {
		t.Errorf("health with VIEWSYNC_ADDR=%s: exit %d, stdout %q, stderr %q", addr, code, stdout, stderr)
	}
	clearEnv(t)

	busy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"code":"unavailable","message":"draining"}}`, http.StatusServiceUnavailable)
	}))
	defer busy.Close()
	busyAddr := strings.TrimPrefix(busy.URL, "http://")
	if code, _, stderr := runCmd(t, "health", "--addr", busyAddr); code != 1 || !strings.Contains(stderr, "503") || !strings.Contains(stderr, "draining") {
		t.Errorf("health of a draining server: exit %d, stderr %q; want 1 naming the 503", code, stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := l.Addr().String()
	l.Close()
	if code, _, stderr := runCmd(t, "health", "--addr", gone); code != 1 || !strings.Contains(stderr, gone) {
		t.Errorf("health of no server: exit %d, stderr %q; want 1 naming the address", code, stderr)
	}
	for _, args := range [][]string{{"--addr", "nowhere"}, {"--timeout", "0s"}, {"surplus"}} {
		if code, _, stderr := runCmd(t, append([]string{"health"}, args...)...); code != 2 {
			t.Errorf("health %v: exit %d, stderr %q; want 2", args, code, stderr)
		}
	}
}
