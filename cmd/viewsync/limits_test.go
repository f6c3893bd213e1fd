package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRejectsBadConnectionFlags: the connection and request limits
// refuse values that would turn them off or make no sense.
func TestServeRejectsBadConnectionFlags(t *testing.T) {
	clearEnv(t)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "body-timeout negative", args: []string{"--body-timeout", "-1s"}, want: "--body-timeout"},
		{name: "body-timeout zero", args: []string{"--body-timeout", "0s"}, want: "--body-timeout"},
		{name: "idle-timeout zero", args: []string{"--idle-timeout", "0s"}, want: "--idle-timeout"},
		{name: "read-header-timeout negative", args: []string{"--read-header-timeout", "-1s"}, want: "--read-header-timeout"},
		{name: "max-header-bytes zero", args: []string{"--max-header-bytes", "0"}, want: "--max-header-bytes"},
		{name: "max-header-bytes negative", args: []string{"--max-header-bytes", "-1"}, want: "max-header-bytes"},
		{name: "max-conns negative", args: []string{"--max-conns", "-1"}, want: "--max-conns"},
		{name: "health-conns negative", args: []string{"--health-conns", "-1"}, want: "--health-conns"},
		{name: "max-conns-per-ip negative", args: []string{"--max-conns-per-ip", "-1"}, want: "--max-conns-per-ip"},
		{name: "env idle-timeout negative", env: map[string]string{"VIEWSYNC_IDLE_TIMEOUT": "-5s"}, want: "--idle-timeout"},
		{name: "env max-conns not a number", env: map[string]string{"VIEWSYNC_MAX_CONNS": "many"}, want: "VIEWSYNC_MAX_CONNS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := filepath.Join(t.TempDir(), "data")
			code, stdout, stderr := runCmd(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, tt.args...)...)
			if code == 0 {
				t.Errorf("exit 0")
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

func TestMaxConnsFor(t *testing.T) {
	for _, tt := range []struct {
		openFiles uint64
		want      int
	}{
		{0, fallbackMaxConns},
		{64, 32},
		{256, 128},
		{1024, 768},
		{20000, 17500},
		{1 << 20, 1<<20 - 1<<17},
	} {
		if got := maxConnsFor(tt.openFiles); got != tt.want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", tt.openFiles, got, tt.want)
		}
	}
}
