package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
)

// helpFlag matches a flag's line in a command's help: its name, then
// what follows.
var helpFlag = regexp.MustCompile(`(?m)^  --([a-z0-9-]+)(.*)$`)

// TestServeHelp: serve --help prints, on stderr and touching nothing, its
// flags section by section, each flag once with its environment variable
// and its default, sizes with units and durations short.
func TestServeHelp(t *testing.T) {
	clearEnv(t)
	for _, arg := range []string{"--help", "-h"} {
		dir := filepath.Join(t.TempDir(), "data")
		code, stdout, stderr := runCmd(t, "serve", arg, "--data", dir)
		if code != 0 || stdout != "" {
			t.Errorf("serve %s: exit %d, stdout %q; want 0 and the help on stderr", arg, code, stdout)
		}
		if !strings.HasPrefix(stderr, "Usage: viewsync serve") {
			t.Errorf("serve %s: no usage line:\n%s", arg, stderr)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("serve %s created the data directory (%v)", arg, err)
		}
	}
	_, _, help := runCmd(t, "serve", "--help")

	// The sections in order, each with a heading and flags, and no flag
	// left for "Other".
	rest := help
	for _, s := range serveSections {
		i := strings.Index(rest, "\n"+s.Title+":\n  --")
		if i < 0 {
			t.Errorf("section %q missing, empty or out of order in\n%s", s.Title, help)
			continue
		}
		rest = rest[i:]
	}
	if strings.Contains(help, "\nOther:\n") {
		t.Errorf("flags in no section (add them to serveSections):\n%s", help[strings.Index(help, "\nOther:\n"):])
	}

	// Every flag exactly once, and nothing else.
	fs, _ := serveFlags(io.Discard)
	lines := map[string]string{}
	for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
		if _, dup := lines[m[1]]; dup {
			t.Errorf("--%s listed twice", m[1])
		}
		lines[m[1]] = m[2]
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		line, ok := lines[f.Name]
		if !ok {
			t.Errorf("--%s not listed", f.Name)
			return
		}
		if !strings.Contains(line, "env "+cliflag.EnvName(f.Name)+")") {
			t.Errorf("--%s%s: no environment variable", f.Name, line)
		}
		_, isSize := f.Value.(*cliflag.Size)
		def := regexp.MustCompile(`\(default (.*); env`).FindStringSubmatch(line)
		switch {
		case def == nil && f.DefValue != "":
			t.Errorf("--%s%s: no default, want %s", f.Name, line, f.DefValue)
		case isSize && !regexp.MustCompile(`^(0|[0-9]+(B|KiB|MiB|GiB|KB|MB|GB))$`).MatchString(def[1]):
			t.Errorf("--%s%s: a size's default without its unit", f.Name, line)
		case isSize && !strings.HasPrefix(line, " size "):
			t.Errorf("--%s%s: not shown as a size", f.Name, line)
		case def != nil && strings.HasPrefix(line, " duration ") && (strings.HasSuffix(def[1], "m0s") || strings.HasSuffix(def[1], "h0m")):
			t.Errorf("--%s%s: a duration's default not in its shortest form", f.Name, line)
		}
	})
	if len(lines) != n {
		t.Errorf("%d flags listed, serve has %d", len(lines), n)
	}
}

// TestServeSizeFlags: every flag of serve that is a number of bytes is a
// cliflag.Size, which takes and prints units.
func TestServeSizeFlags(t *testing.T) {
	fs, _ := serveFlags(io.Discard)
	fs.VisitAll(func(f *flag.Flag) {
		_, isSize := f.Value.(*cliflag.Size)
		g, ok := f.Value.(flag.Getter)
		if !ok || isSize {
			return
		}
		if _, isInt := g.Get().(int); isInt && (strings.Contains(f.Usage, "bytes") || strings.HasSuffix(f.Name, "-bytes")) {
			t.Errorf("--%s is a plain int, but a number of bytes (%q): make it a cliflag.Size", f.Name, f.Usage)
		}
	})
}

// TestServeFlagValues: sizes and durations from the command line and the
// environment, with and without units; the command line wins; junk is
// refused naming the flag or the variable and what was wanted.
func TestServeFlagValues(t *testing.T) {
	clearEnv(t)
	type values struct {
		maxBody, maxFilterBytes, maxID, bufferBytes cliflag.Size
		retainTombstones                            time.Duration
	}
	defaults := func() values {
		_, c := serveFlags(io.Discard)
		return values{c.maxBody, c.maxFilterBytes, c.maxID, c.bufferBytes, c.retainTombstones}
	}
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want func(*values)
		err  string // in the error, or said by the flag set; "": none
	}{
		{name: "defaults", want: func(*values) {}},
		{name: "4MiB", args: []string{"--max-body", "4MiB"}, want: func(v *values) { v.maxBody = 4 << 20 }},
		{name: "512KiB", args: []string{"--buffer-bytes=512KiB"}, want: func(v *values) { v.bufferBytes = 512 << 10 }},
		{name: "bytes", args: []string{"--max-body", "1048576", "--max-filter-bytes", "8192", "--max-id", "64"},
			want: func(v *values) { v.maxBody, v.maxFilterBytes, v.maxID = 1<<20, 8<<10, 64 }},
		{name: "decimal units", args: []string{"--max-filter-bytes", "2KB"}, want: func(v *values) { v.maxFilterBytes = 2000 }},
		{name: "environment", env: map[string]string{"VIEWSYNC_MAX_BODY": "2MiB", "VIEWSYNC_MAX_FILTER_BYTES": "1KiB", "VIEWSYNC_RETAIN_TOMBSTONES": "24h"},
			want: func(v *values) { v.maxBody, v.maxFilterBytes, v.retainTombstones = 2<<20, 1<<10, 24*time.Hour }},
		{name: "environment in bytes", env: map[string]string{"VIEWSYNC_BUFFER_BYTES": "65536"}, want: func(v *values) { v.bufferBytes = 64 << 10 }},
		{name: "command line wins", args: []string{"--max-body", "3MiB"}, env: map[string]string{"VIEWSYNC_MAX_BODY": "junk"},
			want: func(v *values) { v.maxBody = 3 << 20 }},
		{name: "junk size", args: []string{"--max-body", "lots"}, err: "not a size"},
		{name: "fraction", args: []string{"--buffer-bytes", "1.5MiB"}, err: "not a size"},
		{name: "unknown unit", args: []string{"--max-filter-bytes", "4TiB"}, err: "not a size"},
		{name: "negative", args: []string{"--max-id", "-1"}, err: "not a size"},
		{name: "junk size in the environment", env: map[string]string{"VIEWSYNC_MAX_BODY": "big"}, err: `VIEWSYNC_MAX_BODY="big": not a size`},
		{name: "junk duration in the environment", env: map[string]string{"VIEWSYNC_RETAIN_TOMBSTONES": "a week"}, err: "VIEWSYNC_RETAIN_TOMBSTONES"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out strings.Builder
			fs, c := serveFlags(&out)
			err := cliflag.Parse(fs, tt.args)
			if tt.err != "" {
				if err == nil {
					t.Fatalf("no error, want one saying %q", tt.err)
				}
				if said := out.String() + err.Error(); !strings.Contains(said, tt.err) {
					t.Errorf("said %q, want %q in it", said, tt.err)
				}
				if errors.Is(err, cliflag.ErrUsage) && strings.Contains(out.String(), "Usage:") {
					t.Errorf("a bad value printed the whole usage:\n%s", out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v (%s)", err, out.String())
			}
			want := defaults()
			tt.want(&want)
			if got := (values{c.maxBody, c.maxFilterBytes, c.maxID, c.bufferBytes, c.retainTombstones}); got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if err := c.validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

// TestUnknownFlagSuggestions: every command answers an unknown flag with
// the error and the nearest flag names, not its whole help, and exits 2.
func TestUnknownFlagSuggestions(t *testing.T) {
	clearEnv(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--max-bdy", "1MiB"}, "did you mean --max-body?"},
		{[]string{"serve", "--retain-comits", "5"}, "did you mean --retain-commits?"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--cors-origins", "*"}, "--cors-origin"},
		{[]string{"serve", "--pg-tables", "public.t"}, "--pg-table"},
		{[]string{"token", "--subject", "ana"}, "did you mean --sub?"},
		{[]string{"token", "--ttl", "1h", "--reads", "x"}, "--read"},
		{[]string{"health", "--timout", "1s"}, "did you mean --timeout?"},
		{[]string{"bench", "fanout", "--subscriber", "10"}, "did you mean --subscribers?"},
		{[]string{"bench", "history", "--value-byte", "1KiB"}, "--value-bytes"},
	} {
		code, stdout, stderr := runCmd(t, tt.args...)
		name := strings.Join(tt.args, " ")
		if code != 2 || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want 2 and nothing", name, code, stdout)
		}
		if !strings.Contains(stderr, "flag provided but not defined") || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: said %q, want the error and %q", name, stderr, tt.want)
		}
		if strings.Contains(stderr, "Usage:") || strings.Count(stderr, "\n") > 3 {
			t.Errorf("%s: said more than the error and the suggestions:\n%s", name, stderr)
		}
	}
}

// TestCommandHelp: the other commands' help shows each flag with its
// environment variable and its default.
func TestCommandHelp(t *testing.T) {
	clearEnv(t)
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"token", "--help"}, []string{"  --ttl duration  (default 1h; env VIEWSYNC_TTL)", "  --sub string  (env VIEWSYNC_SUB)"}},
		{[]string{"health", "--help"}, []string{"  --timeout duration  (default 3s; env VIEWSYNC_TIMEOUT)", "  --live  (default false; env VIEWSYNC_LIVE)"}},
		{[]string{"bench", "fanout", "--help"}, []string{"  --value-size size  (default 100B; env VIEWSYNC_VALUE_SIZE)", "  --duration duration  (default 10s; env VIEWSYNC_DURATION)"}},
		{[]string{"bench", "history", "--help"}, []string{"  --value-bytes size  (default 200KiB; env VIEWSYNC_VALUE_BYTES)"}},
	} {
		code, _, stderr := runCmd(t, tt.args...)
		if code != 0 {
			t.Errorf("%s: exit %d", strings.Join(tt.args, " "), code)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: no %q in\n%s", strings.Join(tt.args, " "), w, stderr)
			}
		}
	}
}
