package cliflag

import (
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// helpSet returns a flag set of every kind of flag the commands use.
func helpSet() *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("addr", "127.0.0.1:8080", "address to listen on")
	fs.String("cors-origin", "", "origins whose pages may call the API")
	fs.Bool("demo", true, "serve the demo")
	fs.Int("max-conns", 0, "most connections; 0: the open-files limit")
	fs.Float64("commit-rate", 200, "commits per second")
	fs.Duration("retain-tombstones", 168*time.Hour, "how long deletions are remembered")
	fs.Duration("flush-interval", 50*time.Millisecond, "longest wait of a commit")
	body := Size(1 << 20)
	fs.Var(&body, "max-body", "largest request body")
	fs.String("pg-url", "", "PostgreSQL to feed collections from")
	fs.String("pg-slot", "viewsync", "the replication slot")
	fs.String("pg-new", "", "a flag of the family no section names")
	fs.String("log-level", "info", "the log `level`: debug, info, warn, error")
	fs.String("stray", "", "a flag no section takes")
	return fs
}

func TestLayout(t *testing.T) {
	sections := []Section{
		{Title: "Server", Names: []string{"addr", "log-level", "no-such-flag"}},
		{Title: "Limits", Names: []string{"max-body", "max-conns", "commit-rate", "addr"}},
		{Title: "Empty", Names: []string{"no-such-flag"}},
		{Title: "PostgreSQL", Names: []string{"pg-url", "pg-slot"}, Prefix: "pg-"},
		{Title: "Rest", Names: []string{"retain-tombstones", "flush-interval", "demo", "cors-origin"}},
	}
	want := []Section{
		{Title: "Server", Names: []string{"addr", "log-level"}},
		{Title: "Limits", Names: []string{"max-body", "max-conns", "commit-rate"}},
		{Title: "PostgreSQL", Names: []string{"pg-url", "pg-slot", "pg-new"}},
		{Title: "Rest", Names: []string{"retain-tombstones", "flush-interval", "demo", "cors-origin"}},
		{Title: "Other", Names: []string{"stray"}},
	}
	if got := Layout(helpSet(), sections); !reflect.DeepEqual(got, want) {
		t.Errorf("Layout =\n%+v\nwant\n%+v", got, want)
	}
}

// TestPrintFlags: each flag once, in its section, with the kind of its
// value, its default (sizes with units, durations short, empty strings
// left out) and its environment variable, then its description.
func TestPrintFlags(t *testing.T) {
	var out strings.Builder
	PrintFlags(&out, helpSet(), []Section{
		{Title: "Server", Names: []string{"addr", "log-level", "demo", "cors-origin"}},
		{Title: "Limits", Names: []string{"max-body", "max-conns", "commit-rate", "retain-tombstones", "flush-interval"}, Prefix: "pg-"},
	})
	got := out.String()
	for _, tt := range []struct {
		name string
		want string // the flag's line
	}{
		{"addr", "  --addr string  (default 127.0.0.1:8080; env VIEWSYNC_ADDR)\n        address to listen on\n"},
		{"log-level", "  --log-level level  (default info; env VIEWSYNC_LOG_LEVEL)\n        the log level: debug, info, warn, error\n"},
		{"demo", "  --demo  (default true; env VIEWSYNC_DEMO)\n"},
		{"cors-origin", "  --cors-origin string  (env VIEWSYNC_CORS_ORIGIN)\n"},
		{"max-body", "  --max-body size  (default 1MiB; env VIEWSYNC_MAX_BODY)\n"},
		{"max-conns", "  --max-conns int  (default 0; env VIEWSYNC_MAX_CONNS)\n"},
		{"commit-rate", "  --commit-rate number  (default 200; env VIEWSYNC_COMMIT_RATE)\n"},
		{"retain-tombstones", "  --retain-tombstones duration  (default 168h; env VIEWSYNC_RETAIN_TOMBSTONES)\n"},
		{"flush-interval", "  --flush-interval duration  (default 50ms; env VIEWSYNC_FLUSH_INTERVAL)\n"},
		{"pg-url", "  --pg-url string  (env VIEWSYNC_PG_URL)\n"},
		{"stray", "  --stray string  (env VIEWSYNC_STRAY)\n"},
	} {
		if !strings.Contains(got, tt.want) {
			t.Errorf("no %q in\n%s", tt.want, got)
		}
		if n := strings.Count(got, "  --"+tt.name+" "); n != 1 {
			t.Errorf("--%s listed %d times in\n%s", tt.name, n, got)
		}
	}
	// Sections in order, their flags under them.
	order := []string{"Server:\n", "--addr", "--log-level", "--demo", "--cors-origin",
		"\nLimits:\n", "--max-body", "--flush-interval", "--pg-new", "--pg-slot", "--pg-url",
		"\nOther:\n", "--stray"}
	rest := got
	for _, w := range order {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("%q missing or out of order in\n%s", w, got)
		}
		rest = rest[i+len(w):]
	}

	// Without sections: one list, alphabetically, no title.
	out.Reset()
	PrintFlags(&out, helpSet(), nil)
	if got := out.String(); !strings.HasPrefix(got, "  --addr string") || strings.Contains(got, "Other:") ||
		strings.Index(got, "--commit-rate") > strings.Index(got, "--demo") {
		t.Errorf("PrintFlags without sections:\n%s", got)
	}
}

// TestPrintFlagsWraps: long descriptions wrap within the width, at
// spaces, and a word longer than a line stays whole.
func TestPrintFlagsWraps(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	long := strings.Repeat("many words make a long description ", 10)
	url := "postgres://user:password@host:5432/a-very-long-database-name-that-takes-a-whole-line-of-its-own-and-more"
	fs.String("long", "", long+url)
	var out strings.Builder
	PrintFlags(&out, fs, nil)
	var words []string
	for i, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if i == 0 {
			continue
		}
		if len(l) > helpWidth && strings.TrimSpace(l) != url {
			t.Errorf("line %q is longer than %d", l, helpWidth)
		}
		if !strings.HasPrefix(l, "        ") {
			t.Errorf("line %q is not indented", l)
		}
		words = append(words, strings.Fields(l)...)
	}
	if got, want := strings.Join(words, " "), strings.Join(strings.Fields(long+url), " "); got != want {
		t.Errorf("the description wrapped reads %q, want %q", got, want)
	}
}
