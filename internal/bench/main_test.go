package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/internal/cliflag"
)

// binDir holds the viewsync binary built for the tests that spawn it.
var binDir string

func TestMain(m *testing.M) {
	// The environment the tests run in must not set the bench's flags.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "VIEWSYNC_") {
			os.Unsetenv(name)
		}
	}
	dir, err := os.MkdirTemp("", "viewsync-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench tests:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testExecutable is what the Command of runBench spawns: none, unless
// the test calls useBuiltBinary (this test binary is no viewsync).
var testExecutable = func() (string, error) {
	return "", errors.New("this test spawns nothing: it must call useBuiltBinary first")
}

var built struct {
	once sync.Once
	path string
	err  error
}

// useBuiltBinary builds cmd/viewsync once per test run (with -race when
// this test binary has it) and has runBench spawn it, for the test, as
// 'viewsync serve' and as the hidden loader and baseline processes.
func useBuiltBinary(t *testing.T) {
	t.Helper()
	built.once.Do(func() {
		path := filepath.Join(binDir, "viewsync")
		args := []string{"build", "-o", path}
		if bi, ok := debug.ReadBuildInfo(); ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"}) {
			args = append(args, "-race")
		}
		// go test puts the go command of its GOROOT first on PATH.
		out, err := exec.Command("go", append(args, "github.com/viewsync/viewsync/cmd/viewsync")...).CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		built.path = path
	})
	if built.err != nil {
		t.Fatalf("building viewsync: %v", built.err)
	}
	prev := testExecutable
	testExecutable = func() (string, error) { return built.path, nil }
	t.Cleanup(func() { testExecutable = prev })
}

// runBench runs 'viewsync bench ARGS' and returns the binary's exit code
// (0; 2 for a usage error; else 1), its stdout and its stderr, with the
// error printed as the binary prints it.
func runBench(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := &Command{Executable: testExecutable}
	err := cmd.Run(t.Context(), args, &stdout, &stderr)
	code := 0
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, cliflag.ErrUsage):
		code = 2
	default:
		code = 1
		if errors.Is(err, cliflag.ErrBadFlag) {
			code = 2
		}
		fmt.Fprintf(&stderr, "viewsync bench: %v\n", err)
	}
	return code, stdout.String(), stderr.String()
}

// runJSON runs 'viewsync bench ARGS --json', which must succeed, and
// returns its report and what it printed to stderr.
func runJSON[R any](t *testing.T, args ...string) (R, string) {
	t.Helper()
	var r R
	code, stdout, stderr := runBench(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("bench %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout)
	}
	return r, stderr
}
