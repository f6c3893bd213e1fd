package server_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeAddr is the address the README's program listens on; the test
// gives it a free port instead, the one change it makes.
const readmeAddr = `"localhost:8080"`

// readmeProgram returns the README's embedding example: the first Go
// block of its section "Embedding viewsync in a Go program".
func readmeProgram(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Embedding viewsync in a Go program\n")
	if !ok {
		t.Fatal("README.md has no section \"Embedding viewsync in a Go program\"")
	}
	m := regexp.MustCompile("(?s)\n```go\n(.*?)\n```\n").FindStringSubmatch(section)
	if m == nil {
		t.Fatal("the README's embedding section has no Go block")
	}
	return m[1] + "\n"
}

// TestREADMEEmbedding: the README's embedding example, copied into a new
// module, builds, is at most 15 lines, and serves the API, live pushes
// and /viewsync.js on a durable store in ./data.
func TestREADMEEmbedding(t *testing.T) {
	program := readmeProgram(t)
	if n := strings.Count(program, "\n"); n > 15 {
		t.Errorf("the README's embedding example is %d lines, want at most 15", n)
	}
	if strings.Count(program, readmeAddr) != 1 {
		t.Fatalf("the README's embedding example does not listen on %s once:\n%s", readmeAddr, program)
	}
	addr := freeAddr(t)
	program = strings.Replace(program, readmeAddr, `"`+addr+`"`, 1)

	dir := t.TempDir()
	bin := buildModule(t, dir, program)
	cmd := exec.Command(bin)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("the program's output:\n%s", out.String())
		}
	})
	url := "http://" + addr
	waitHealthy(t, url)

	coll := url + "/v1/collections/products"
	readUntil(t, coll+"/events", `"value":{"name":"Lamp"}`, func() {
		if code, _, body := do(t, "PUT", coll+"/records/p1", `{"name":"Lamp"}`); code != http.StatusOK {
			t.Errorf("PUT: %d %s", code, body)
		}
	})
	readUntil(t, coll+"/stream", `"value":{"name":"Desk"}`, func() {
		if code, _, body := do(t, "PUT", coll+"/records/p2", `{"name":"Desk"}`); code != http.StatusOK {
			t.Errorf("PUT: %d %s", code, body)
		}
	})
	if code, _, _ := do(t, "GET", url+"/viewsync.js", ""); code != http.StatusOK {
		t.Errorf("GET /viewsync.js: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "viewsync.db")); err != nil {
		t.Errorf("no store in ./data: %v", err)
	}
}

// buildModule writes program as the main package of a new module in dir,
// which requires this checkout of viewsync, and builds it, from the
// module cache only.
func buildModule(t *testing.T, dir, program string) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	// The new module requires viewsync and, as go mod tidy would write,
	// the modules viewsync requires.
	goLine := regexp.MustCompile(`(?m)^go .*$`).Find(goMod)
	requires := regexp.MustCompile(`(?ms)^require \(.*?^\)$`).FindAll(goMod, -1)
	mod := "module example.com/app\n\n" + string(goLine) + "\n\n" +
		"require github.com/viewsync/viewsync v0.0.0\n\n" +
		string(bytes.Join(requires, []byte("\n\n"))) + "\n\n" +
		"replace github.com/viewsync/viewsync => " + root + "\n"
	for name, body := range map[string]string{"go.mod": mod, "main.go": program} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// viewsync's go.sum holds the sums of every module the program needs.
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sums, 0o644); err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building the README's program needs the go command: %v", err)
	}
	bin := filepath.Join(dir, "app")
	for _, args := range [][]string{{"build", "-o", bin, "."}} {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s\nthe program:\n%s", strings.Join(args, " "), err, out, program)
		}
	}
	return bin
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitHealthy waits until url answers /healthz.
func waitHealthy(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer /healthz within %s", url, wait)
}
