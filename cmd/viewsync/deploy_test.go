package main

import (
	"debug/elf"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoFile reads a file of the repository, by its path from the root.
func repoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dockerfile is what the tests need of the Dockerfile.
type dockerfile struct {
	// build is the go build command line, env assignments first.
	build []string
	// final holds the final stage's instructions, keyword → arguments
	// (the last of each).
	final map[string]string
	// env holds the final stage's ENV settings.
	env map[string]string
}

// parseDockerfile reads the instructions the tests check, joining
// continued lines.
func parseDockerfile(t *testing.T, text string) dockerfile {
	t.Helper()
	d := dockerfile{final: map[string]string{}, env: map[string]string{}}
	text = strings.ReplaceAll(text, "\\\n", " ")
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kw, args, _ := strings.Cut(line, " ")
		args = strings.TrimSpace(args)
		switch kw {
		case "FROM":
			d.final = map[string]string{"FROM": args}
			d.env = map[string]string{}
		case "RUN":
			if strings.Contains(args, "go build") {
				d.build = shellWords(t, args)
			}
		case "ENV":
			for _, kv := range strings.Fields(args) {
				k, v, _ := strings.Cut(kv, "=")
				d.env[k] = v
			}
		}
		d.final[kw] = args
	}
	if d.build == nil {
		t.Fatal("the Dockerfile has no RUN … go build")
	}
	return d
}

// shellWords splits a simple shell command line: words apart by blanks,
// double quotes grouping (and removed).
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	in, quoted := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(r)
			in = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quotes in %q", s)
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

// TestDockerfileBinary builds the binary exactly as the Dockerfile's
// build stage does, checks that it is static (the final image is empty
// but for it), and runs it as the image does: as the image's
// unprivileged user (when the test may switch users), from an empty
// directory, with only the image's environment and a secret, until
// 'viewsync health' — the image's health check — passes; then stops it
// with SIGTERM.
func TestDockerfileBinary(t *testing.T) {
	t.Parallel() // mostly a build: let the package's other tests run meanwhile
	d := parseDockerfile(t, repoFile(t, "Dockerfile"))

	// What the image promises.
	if d.final["FROM"] != "scratch" {
		t.Errorf("final stage FROM %q, want scratch", d.final["FROM"])
	}
	user := d.final["USER"]
	uidText, gidText, _ := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(uidText)
	gid, err2 := strconv.Atoi(gidText)
	if err1 != nil || err2 != nil || uid == 0 || gid == 0 {
		t.Fatalf("USER %q: want a numeric unprivileged uid:gid", user)
	}
	if !strings.Contains(d.final["HEALTHCHECK"], `CMD ["/viewsync", "health"]`) || d.final["VOLUME"] != "/data" ||
		d.env["VIEWSYNC_DATA"] != "/data" || d.env["VIEWSYNC_ADDR"] != "0.0.0.0:8080" {
		t.Errorf("HEALTHCHECK %q, VOLUME %q, ENV %v: want the health command, /data and 0.0.0.0:8080",
			d.final["HEALTHCHECK"], d.final["VOLUME"], d.env)
	}

	// The build, its env assignments and flags as written, its output
	// here. The image's directories are world-readable, as the image's.
	dir, err := os.MkdirTemp("", "viewsync-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "viewsync")
	env := os.Environ()
	words := d.build
	for len(words) > 0 && strings.Contains(words[0], "=") {
		env = append(env, words[0])
		words = words[1:]
	}
	const version = "v0.0.0-image-test"
	var args []string
	for i := 2; i < len(words); i++ {
		w := strings.ReplaceAll(words[i], "${VERSION}", version)
		if words[i-1] == "-o" {
			w = bin
		}
		args = append(args, w)
	}
	if len(words) < 3 || words[0] != "go" || words[1] != "build" || !strings.Contains(strings.Join(env, " "), "CGO_ENABLED=0") {
		t.Fatalf("the Dockerfile builds with %q: want CGO_ENABLED=0 go build …", d.build)
	}
	build := exec.Command("go", append([]string{"build"}, args...)...)
	build.Dir = filepath.Join("..", "..")
	build.Env = env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader (libraries %v): not static", libs)
		}
	}
	f.Close()
	if len(libs) > 0 {
		t.Errorf("the binary needs %v: not static", libs)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.Contains(string(out), version) {
		t.Errorf("viewsync version: %q, %v; want %s from the build's -X", out, err, version)
	}

	// Run it as the image does.
	work := filepath.Join(dir, "work")
	data := filepath.Join(dir, "data")
	for _, p := range []string{work, data} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(data, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	var imageEnv []string
	command := func(args ...string) *exec.Cmd {
		c := exec.Command(bin, args...)
		c.Dir, c.Env = work, imageEnv
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return c
	}
	var (
		srv    *exec.Cmd
		logs   strings.Builder
		exited chan error
	)
	t.Cleanup(func() {
		if srv != nil && srv.ProcessState == nil {
			srv.Process.Kill()
			<-exited
		}
	})
	// A port free when picked may be taken by another process before the
	// server binds it: then the server starts again on another.
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		imageEnv = []string{"VIEWSYNC_ADDR=0.0.0.0:" + port, "VIEWSYNC_DATA=" + data,
			"VIEWSYNC_AUTH_SECRET=" + strings.Repeat("image-test-secret-", 3)}
		srv = command("serve")
		logs.Reset()
		srv.Stdout, srv.Stderr = io.Discard, &logs
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		cmd, ch := srv, make(chan error, 1)
		exited = ch
		go func() { ch <- cmd.Wait() }()
		var healthOut []byte
		healthy, gone := false, false
		for deadline := time.Now().Add(60 * time.Second); !healthy && !gone && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var err error
			if healthOut, err = command("health").CombinedOutput(); err == nil {
				healthy = true
				break
			}
			select {
			case err := <-exited:
				if attempt < 5 && strings.Contains(logs.String(), "address already in use") {
					gone = true
					break
				}
				t.Fatalf("viewsync serve exited (%v):\n%s", err, logs.String())
			default:
			}
		}
		if healthy {
			break
		}
		if !gone {
			t.Fatalf("viewsync health never passed; last: %s\nserver log:\n%s", healthOut, logs.String())
		}
		t.Logf("port %s was taken before the server bound it; again on another", port)
	}
	entries, err := os.ReadDir(data)
	if err != nil || len(entries) == 0 {
		t.Errorf("the data directory holds %v (%v): the store is not in it", entries, err)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("the working directory holds %v: the server wrote outside its data", entries)
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("viewsync serve after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("viewsync serve did not stop within a minute of SIGTERM:\n%s", logs.String())
	}
}

// TestComposeFiles checks the three-node deployment against the binary:
// each VIEWSYNC_ setting names a flag of serve, the NATS batch limit fits
// the largest commit, the balancer does not buffer streams and passes
// WebSocket upgrades.
func TestComposeFiles(t *testing.T) {
	compose := repoFile(t, "deploy/compose.yaml")
	fs, _ := serveFlags(io.Discard)
	settings := regexp.MustCompile(`\b(VIEWSYNC_[A-Z0-9_]+):\s*"?([^"\n]*)`).FindAllStringSubmatch(compose, -1)
	if len(settings) < 5 {
		t.Fatalf("compose.yaml sets %d VIEWSYNC_ variables, want the engine, NATS, auth and drain settings", len(settings))
	}
	values := map[string]string{}
	for _, m := range settings {
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(m[1], "VIEWSYNC_"), "_", "-"))
		if fs.Lookup(name) == nil {
			t.Errorf("compose.yaml sets %s, but serve has no --%s", m[1], name)
		}
		values[name] = strings.TrimSpace(m[2])
	}
	for _, n := range []string{"viewsync-1", "viewsync-2", "viewsync-3", "nats-1", "nats-2", "nats-3", "lb"} {
		if !strings.Contains(compose, "\n  "+n+":") {
			t.Errorf("compose.yaml has no service %s", n)
		}
	}
	if values["engine"] != "nats" || values["nats-replicas"] != "3" {
		t.Errorf("compose.yaml: engine %q, replicas %q; want nats and 3", values["engine"], values["nats-replicas"])
	}

	nats := repoFile(t, "deploy/nats.conf")
	m := regexp.MustCompile(`max_msgs:\s*(\d+)`).FindStringSubmatch(nats)
	if m == nil || m[1] != values["nats-max-batch"] {
		t.Errorf("nats.conf batch max_msgs %v, compose VIEWSYNC_NATS_MAX_BATCH %q: want them equal", m, values["nats-max-batch"])
	}
	if n, _ := strconv.Atoi(values["nats-max-batch"]); n < 1002 {
		t.Errorf("NATS batch limit %d: the largest commit (1,000 ops) needs more", n)
	}
	for _, node := range []string{"nats-1", "nats-2", "nats-3"} {
		if !strings.Contains(nats, "nats://"+node+":6222") {
			t.Errorf("nats.conf does not route to %s", node)
		}
	}

	nginx := repoFile(t, "deploy/nginx.conf")
	for _, want := range []string{"proxy_buffering off", "proxy_set_header Upgrade $http_upgrade", "viewsync-1:8080", "viewsync-2:8080", "viewsync-3:8080"} {
		if !strings.Contains(nginx, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
}
