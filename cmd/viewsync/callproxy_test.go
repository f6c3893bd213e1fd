package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postCall sends POST /v1/calls/{name} with body and returns the status and
// the answer.
func postCall(t *testing.T, addr, name, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/v1/calls/"+name, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServeCallProxy checks that --call-proxy (or VIEWSYNC_CALL_PROXY)
// relays calls to the backend, that the start is logged without the
// URL's password, and that --call-timeout bounds a call.
func TestServeCallProxy(t *testing.T) {
	clearEnv(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name string          `json:"name"`
			Arg  json.RawMessage `json:"arg"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, pw, _ := r.BasicAuth(); pw != "hunter2" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if req.Name == "slow" {
			// Read to the end, so the server ends r.Context() on hang-up.
			io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"result": map[string]any{"name": req.Name, "arg": req.Arg}})
	}))
	defer backend.Close()
	proxyURL := strings.Replace(backend.URL, "http://", "http://viewsync:hunter2@", 1)

	t.Run("flag", func(t *testing.T) {
		addr, stderr, stop := startServe(t, "--addr", "127.0.0.1:0", "--data", t.TempDir(),
			"--call-proxy", proxyURL, "--call-timeout", "300ms")
		status, body := postCall(t, addr, "hello", `{"arg":{"n":1}}`)
		if status != 200 || body != `{"result":{"arg":{"n":1},"name":"hello"},"versions":{}}` {
			t.Errorf("call: %d %s; want the backend's result", status, body)
		}
		start := time.Now()
		status, body = postCall(t, addr, "slow", `{}`)
		if took := time.Since(start); status != http.StatusGatewayTimeout || took > 5*time.Second {
			t.Errorf("slow call: %d %s after %v; want 504 after --call-timeout", status, body, took)
		}
		if code := stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		log := stderr.String()
		if !strings.Contains(log, "call proxy") || !strings.Contains(log, strings.TrimPrefix(backend.URL, "http://")) {
			t.Errorf("the start does not log the call proxy:\n%s", log)
		}
		if strings.Contains(log, "hunter2") {
			t.Errorf("the log shows the call proxy's password:\n%s", log)
		}
	})

	t.Run("environment", func(t *testing.T) {
		t.Setenv("VIEWSYNC_CALL_PROXY", proxyURL)
		addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", t.TempDir())
		if status, body := postCall(t, addr, "env", `{}`); status != 200 || !strings.Contains(body, `"name":"env"`) {
			t.Errorf("call: %d %s; want the backend's result", status, body)
		}
	})

	t.Run("none", func(t *testing.T) {
		addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", t.TempDir())
		if status, body := postCall(t, addr, "hello", `{}`); status != http.StatusNotFound {
			t.Errorf("call without a proxy: %d %s; want 404", status, body)
		}
	})
}

func TestServeRejectsBadCallFlags(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--call-proxy", "ftp://backend/calls"}, want: "--call-proxy"},
		{args: []string{"--call-proxy", "backend:8080"}, want: "--call-proxy"},
		{args: []string{"--call-proxy", "http://:hunter2@[::1"}, want: "--call-proxy"},
		{args: []string{"--call-proxy-timeout", "0s"}, want: "--call-proxy-timeout"},
		{args: []string{"--call-timeout", "-1s"}, want: "--call-timeout"},
		{env: map[string]string{"VIEWSYNC_CALL_PROXY": "http://"}, want: "--call-proxy"},
		{env: map[string]string{"VIEWSYNC_CALL_TIMEOUT": "soon"}, want: "VIEWSYNC_CALL_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+tt.want, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := filepath.Join(t.TempDir(), "data")
			code, stdout, stderr := runCmd(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr, tt.want) || strings.Contains(stderr, "hunter2") {
				t.Errorf("stderr does not name %q, or shows a password:\n%s", tt.want, stderr)
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
