//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// readmeSections are the README sections whose shell blocks
// TestREADMEWalkthrough runs, in this order, against one server.
var readmeSections = []string{"The HTTP API in five minutes", "Live updates"}

// readmeStep is one command of a README shell block.
type readmeStep struct {
	line  int      // README line the command starts on
	about []string // the comment lines before it
	cmd   string   // the command as printed, continuation lines included
	want  []string // the comment lines right after it: what it prints
}

// TestREADMEWalkthrough follows the README's walkthrough: it takes the
// ```sh blocks of the sections in readmeSections and runs every command in
// them exactly as printed, one after another, each with bash, against a
// `viewsync serve` binary it starts on a fresh data directory. The only
// change to a command is its address: the README's localhost:8080 becomes
// the loopback address and free port the server listens on. The server
// runs with --ping-interval 1s, so that the stream's ping comes in a second
// rather than in fifteen, and with --demo-seed=false, as the README starts
// it, so that products is empty; proxy variables are neutralised
// (no_proxy=*).
//
// The comment lines right after a command (no blank line between) are what
// it prints, line by line and in order: "…" stands for anything, and the
// epoch of the README's examples for the server's own. Blank lines, the
// headers that follow an HTTP status line and keep-alive pings may come in
// between without being shown; any other line the README does not show is
// an error. A command that sets a variable (NAME=$(…)) hands it on to the
// commands after it, as one shell session would.
//
// Streaming commands (curl -N, long-polls with wait=) are stopped once they
// have printed everything the README shows. Where the comment before a
// command asks for a write "from another terminal", the test makes one —
// a PUT of a record in the command's collection — once the command has
// printed every line the README shows before the one naming that write's
// version. Only a hang guard bounds how long a command may take.
func TestREADMEWalkthrough(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []readmeStep
	for _, title := range readmeSections {
		s := readmeShellSteps(t, string(readme), title)
		if len(s) == 0 {
			t.Fatalf("README section %q has no shell commands", title)
		}
		steps = append(steps, s...)
	}
	example := readmeExampleEpoch(t, steps)

	p := startGuarded(t, 0, nil, "--ping-interval", "1s", "--demo-seed=false")
	env := readmeEnv(steps)
	dir := t.TempDir()
	for _, st := range steps {
		name := fmt.Sprintf("README line %d", st.line)
		cmd := strings.ReplaceAll(st.cmd, "localhost:8080", p.addr())
		epoch, head := readmeHead(t, p, cmd)
		want := make([]string, len(st.want))
		for i, w := range st.want {
			want[i] = strings.ReplaceAll(w, example, epoch)
		}
		// The line before which the write from another terminal must land:
		// the first one naming the version it makes.
		writeAt := -1
		if readmeMentions(st.about, "another terminal") {
			next := strconv.FormatUint(head+1, 10)
			for i, w := range want {
				if strings.Contains(w, `"version":`+next+",") || strings.Contains(w, epoch+":"+next) {
					writeAt = i
					break
				}
			}
			if writeAt < 0 {
				t.Fatalf("%s: asks for a write from another terminal but shows no version %s:\n%s", name, next, st.cmd)
			}
		}
		vars := readmeRun(t, name, bash, dir, env, cmd, want, readmeStreams(cmd), writeAt, func() {
			url := p.base + "/v1/collections/" + readmeCollection(t, cmd) + "/records/p3"
			if code, body := httpStatus(t, "PUT", url, `{"name":"Chair","price":40}`); code != 200 {
				t.Errorf("%s: the write from another terminal: %d %s", name, code, body)
			}
		})
		for k, v := range vars {
			env = append(env, k+"="+v)
		}
		if t.Failed() {
			t.Fatalf("%s: the walkthrough stops here:\n%s", name, st.cmd)
		}
	}
}

// readmeShellSteps returns the commands of the ```sh blocks in the README
// section titled title (up to the next "## " heading).
func readmeShellSteps(t *testing.T, readme, title string) []readmeStep {
	t.Helper()
	lines := strings.Split(readme, "\n")
	start := slices.Index(lines, "## "+title)
	if start < 0 {
		t.Fatalf("README has no section %q", title)
	}
	var steps []readmeStep
	var about []string
	inBlock, continued, afterCmd := false, false, false
	for i := start + 1; i < len(lines); i++ {
		l := lines[i]
		if !inBlock {
			if strings.HasPrefix(l, "## ") {
				break
			}
			if l == "```sh" {
				inBlock, about, afterCmd = true, nil, false
			}
			continue
		}
		switch {
		case l == "```":
			inBlock = false
			if continued {
				t.Fatalf("README line %d: a block ends in a continued line", i)
			}
		case continued:
			steps[len(steps)-1].cmd += "\n" + l
			continued = strings.HasSuffix(l, `\`)
		case strings.TrimSpace(l) == "":
			about, afterCmd = nil, false
		case strings.HasPrefix(l, "#"):
			c := strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
			if afterCmd {
				steps[len(steps)-1].want = append(steps[len(steps)-1].want, c)
			} else {
				about = append(about, c)
			}
		default:
			steps = append(steps, readmeStep{line: i + 1, about: about, cmd: l})
			about, afterCmd = nil, true
			continued = strings.HasSuffix(l, `\`)
		}
	}
	return steps
}

// readmeExampleEpoch returns the epoch the README's examples show: the one
// in their first "epoch":"…".
func readmeExampleEpoch(t *testing.T, steps []readmeStep) string {
	t.Helper()
	re := regexp.MustCompile(`"epoch":"([0-9a-f]+)"`)
	for _, st := range steps {
		for _, w := range st.want {
			if m := re.FindStringSubmatch(w); m != nil {
				return m[1]
			}
		}
	}
	t.Fatal(`the README's examples show no "epoch":"…"`)
	return ""
}

// readmeEnv returns the environment the commands run in: this process's,
// without VIEWSYNC_ variables, without the variables the commands use (they
// get them from earlier commands, or not at all), and with no proxy.
func readmeEnv(steps []readmeStep) []string {
	used := map[string]bool{}
	re := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	for _, st := range steps {
		for _, m := range re.FindAllStringSubmatch(st.cmd, -1) {
			used[m[1]] = true
		}
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "VIEWSYNC_") || used[name] ||
			strings.EqualFold(name, "no_proxy")
	})
	return append(env, "no_proxy=*", "NO_PROXY=*")
}

// readmeCollection returns the collection a command's URL names.
func readmeCollection(t *testing.T, cmd string) string {
	t.Helper()
	m := regexp.MustCompile(`/v1/collections/([a-z0-9][a-z0-9_.-]*)`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("no collection in %q", cmd)
	}
	return m[1]
}

// readmeHead returns the epoch and version of the collection a command
// names (of "products" for a command naming none).
func readmeHead(t *testing.T, p *proc, cmd string) (string, uint64) {
	t.Helper()
	coll := "products"
	if strings.Contains(cmd, "/v1/collections/") {
		coll = readmeCollection(t, cmd)
	}
	code, body := httpStatus(t, "GET", p.base+"/v1/collections/"+coll+"/version", "")
	var v struct {
		Epoch   string `json:"epoch"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v.Epoch == "" {
		t.Fatalf("GET %s version: %d %s", coll, code, body)
	}
	return v.Epoch, v.Version
}

// readmeStreams reports whether a command streams or waits: it runs until
// the test stops it or something happens.
func readmeStreams(cmd string) bool {
	return strings.Contains(cmd, "curl -N") || strings.Contains(cmd, "wait=")
}

func readmeMentions(lines []string, s string) bool {
	return strings.Contains(strings.Join(lines, " "), s)
}

// readmeLine matches an output line against a README line, "…" standing
// for anything.
func readmeLine(want string) *regexp.Regexp {
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `.*`) + `$`)
}

var (
	httpStatusLine = regexp.MustCompile(`^HTTP/[0-9.]+ [0-9]{3}`)
	assignment     = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=`)
)

// readmeRun runs one command with bash in dir and checks what it prints
// against want. A streaming command is stopped once it has printed all of
// want; write is called once want[writeAt] is the next line expected
// (writeAt < 0: never). It returns the variable the command sets, if any.
func readmeRun(t *testing.T, name, bash, dir string, env []string, cmd string, want []string, streams bool, writeAt int, write func()) map[string]string {
	t.Helper()
	script := cmd
	var varName string
	var varFile *os.File
	if m := assignment.FindStringSubmatch(cmd); m != nil {
		varName = m[1]
		f, err := os.CreateTemp(dir, "var-")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		varFile = f
		// The command as printed, then hand its variable on (fd 3).
		script += "\nstatus=$?\nprintf '%s' \"$" + varName + "\" >&3\nexit $status"
	}
	c := exec.Command(bash, "-c", script)
	c.Dir, c.Env = dir, env
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if varFile != nil {
		c.ExtraFiles = []*os.File{varFile}
	}
	stderr := &lockedBuffer{}
	c.Stderr = stderr
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := c.Process.Pid
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			syscall.Kill(-pgid, syscall.SIGKILL) // bash and its curl
		}
	}
	lines := make(chan string)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- strings.TrimSuffix(sc.Text(), "\r")
		}
		close(lines)
		waitErr = c.Wait()
		close(exited)
	}()
	defer func() {
		stop()
		for range lines {
		}
		<-exited
	}()

	var got []string
	fail := func(format string, args ...any) {
		t.Errorf("%s: %s\nthe command:\n%s\nit printed:\n%s\nstderr:\n%s", name, fmt.Sprintf(format, args...), cmd, strings.Join(got, "\n"), stderr)
	}
	next, inHeader, wrote := 0, false, false
	maybeWrite := func() {
		if !wrote && next == writeAt {
			wrote = true
			write()
		}
	}
	maybeWrite()
	guard := hangGuard(t)
	for !(streams && next == len(want)) {
		var l string
		var ok bool
		select {
		case l, ok = <-lines:
		case <-guard:
			fail("still running, %d of the README's %d lines seen (hang guard)", next, len(want))
			return nil
		}
		if !ok {
			break
		}
		got = append(got, l)
		switch {
		case next < len(want) && readmeLine(want[next]).MatchString(l):
			next++
			maybeWrite()
			if httpStatusLine.MatchString(l) {
				inHeader = true
			}
			continue
		case l == "":
			inHeader = false
			continue
		case httpStatusLine.MatchString(l):
			inHeader = true
			continue
		case inHeader, l == ": ping", l == `{"type":"ping"}`:
			continue
		}
		if next < len(want) {
			fail("printed %q where the README shows %q", l, want[next])
		} else {
			fail("printed %q, which the README does not show", l)
		}
		return nil
	}
	if next < len(want) {
		fail("ended before printing %q", want[next])
		return nil
	}
	if streams {
		return nil
	}
	select {
	case <-exited:
	case <-guard:
		fail("did not exit (hang guard)")
		return nil
	}
	if waitErr != nil {
		fail("failed: %v", waitErr)
		return nil
	}
	if varFile == nil {
		return nil
	}
	b, err := os.ReadFile(varFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		fail("set %s to nothing", varName)
		return nil
	}
	return map[string]string{varName: string(b)}
}
