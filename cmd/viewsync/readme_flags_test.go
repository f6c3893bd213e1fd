package main

import (
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

// readmeFlagRow is a row of the README's flag tables: the flags it names
// and the values in its default column.
type readmeFlagRow struct {
	line     int
	flags    []string
	defaults []string
	each     bool // "`10000` each": one default for all the row's flags
}

// TestREADMEFlags: the README's section "Running the server" has serve's
// help sections, in order, each with a table; the tables name every flag
// of serve once, and no other; where a row shows a default, it is the
// flag's (sizes and durations compared as such: 60s is 1m).
func TestREADMEFlags(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## Running the server\n")
	if start < 0 {
		t.Fatal(`README has no section "Running the server"`)
	}
	firstLine := strings.Count(text[:start], "\n") + 2
	part := text[start+1:]
	if end := strings.Index(part[1:], "\n## "); end >= 0 {
		part = part[:end+1]
	}

	var titles []string
	var rows []readmeFlagRow
	code := regexp.MustCompile("`([^`]*)`")
	for i, l := range strings.Split(part, "\n") {
		if t, ok := strings.CutPrefix(l, "**"); ok && strings.HasSuffix(t, "**") {
			titles = append(titles, strings.ReplaceAll(strings.TrimSuffix(t, "**"), "`", ""))
			continue
		}
		cells := strings.Split(l, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`--") {
			continue
		}
		row := readmeFlagRow{line: firstLine + i, each: strings.Contains(cells[2], " each")}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			row.flags = append(row.flags, strings.TrimPrefix(m[1], "--"))
		}
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			row.defaults = append(row.defaults, m[1])
		}
		rows = append(rows, row)
	}

	var want []string
	for _, s := range serveSections {
		want = append(want, s.Title)
	}
	if strings.Join(titles, "\n") != strings.Join(want, "\n") {
		t.Errorf("the README's flag tables are headed\n%q\nwant serve --help's sections\n%q", titles, want)
	}

	fs, _ := serveFlags(io.Discard)
	seen := map[string]int{}
	for _, r := range rows {
		for k, name := range r.flags {
			seen[name]++
			f := fs.Lookup(name)
			if f == nil {
				t.Errorf("README line %d: serve has no flag --%s", r.line, name)
				continue
			}
			var def string
			switch {
			case len(r.defaults) == len(r.flags):
				def = r.defaults[k]
			case len(r.defaults) == 1 && r.each:
				def = r.defaults[0]
			default:
				continue // a default in words
			}
			if !sameDefault(f, def) {
				t.Errorf("README line %d: --%s defaults to %s, the README says %s", r.line, name, f.DefValue, def)
			}
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if seen[f.Name] != 1 {
			t.Errorf("the README's flag tables name --%s %d times, want once", f.Name, seen[f.Name])
		}
	})
}

// sameDefault reports whether the README's default s is f's default:
// sizes and durations by their value, anything else as written.
func sameDefault(f *flag.Flag, s string) bool {
	if _, ok := f.Value.(*cliflag.Size); ok {
		var a, b cliflag.Size
		return a.Set(s) == nil && b.Set(f.DefValue) == nil && a == b
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().(time.Duration); ok {
			a, err1 := time.ParseDuration(s)
			b, err2 := time.ParseDuration(f.DefValue)
			return err1 == nil && err2 == nil && a == b
		}
	}
	return s == f.DefValue
}
