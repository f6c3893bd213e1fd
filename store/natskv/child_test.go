package natskv_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// childEnv, set to a directory, makes the test binary a JetStream server
// keeping its data there (see serveChild) instead of running tests.
const childEnv = "VIEWSYNC_TEST_NATS_CHILD"

// serveChild runs the test binary as a JetStream server for a parent test
// (startChildServer), when childEnv asks it to: it prints the server's
// URL, serves until its standard input closes, and exits. It returns false
// when the binary is to run tests.
func serveChild() bool {
	dir := os.Getenv(childEnv)
	if dir == "" {
		return false
	}
	opts := serverOptions(dir)
	opts.SyncAlways = false // the parent measures itself, not the disk
	srv, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nats server:", err)
		os.Exit(1)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		fmt.Fprintln(os.Stderr, "nats server not ready")
		os.Exit(1)
	}
	fmt.Println(srv.ClientURL())
	io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	srv.WaitForShutdown()
	os.Exit(0)
	return true
}

// startChildServer starts a JetStream server in a process of its own (this
// test binary, see serveChild), so that the test's heap is the stores'
// alone, and stops it when the test ends. It returns the server's URL.
func startChildServer(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the server process did not start: %v", err)
	}
	return strings.TrimSpace(url)
}
