package main

import (
	"strings"
	"testing"
)

// TestBenchCommand checks that 'viewsync bench' is wired to the bench
// tool, with the binary's exit codes: its scenarios and the hidden
// processes are tested in internal/bench.
func TestBenchCommand(t *testing.T) {
	clearEnv(t)
	for _, tt := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{[]string{"bench"}, 2, "", "Usage: viewsync bench"},
		{[]string{"bench", "stampede"}, 2, "", `unknown scenario "stampede"`},
		{[]string{"bench", "fanout", "--url", "http://x", "--subscribers", "0"}, 2, "", "viewsync bench: bad flag value: --subscribers must be positive"},
		{[]string{"bench", "poll", "--help"}, 0, "", "Usage: viewsync bench poll"},
		{[]string{"bench", "help"}, 0, "history", ""},
		{[]string{"help"}, 0, "bench", ""},
	} {
		code, stdout, stderr := runCmd(t, tt.args...)
		if code != tt.code || !strings.Contains(stdout, tt.out) || !strings.Contains(stderr, tt.errs) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q and %q", strings.Join(tt.args, " "), code, stdout, stderr, tt.code, tt.out, tt.errs)
		}
	}
}
