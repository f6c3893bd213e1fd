package browser

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/internal/pgtest"
)

// moduleRoot is the directory of the module's go.mod; serverBin the
// viewsync binary built from it for this run. Both are set by TestMain.
var moduleRoot, serverBin string

// TestMain builds the viewsync binary once for every test, runs the tests,
// and then fails the run if a test left a goroutine behind (a browser
// connection, a server process watcher, an HTTP keep-alive).
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "viewsync-browser-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if moduleRoot, err = findModuleRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "browser tests:", err)
		return 1
	}
	serverBin = filepath.Join(dir, "viewsync")
	build := exec.Command("go", "build", "-o", serverBin, "./cmd/viewsync")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "browser tests: go build ./cmd/viewsync: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	pgtest.StopAll() // the PostgreSQL cluster, when a test started it
	return leakcheck.Check(code)
}

// findModuleRoot asks the go command for the module's go.mod.
func findModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := string(bytes.TrimSpace(out))
	if gomod == "" || gomod == os.DevNull || !strings.HasSuffix(gomod, "go.mod") {
		return "", fmt.Errorf("go env GOMOD: not in a module (%q)", gomod)
	}
	return filepath.Dir(gomod), nil
}
