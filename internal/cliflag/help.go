package cliflag

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Section is a group of flags in a command's help, under its title.
type Section struct {
	// Title heads the section.
	Title string
	// Names are the section's flags, in the order shown.
	Names []string
	// Prefix, when not empty, also takes every flag whose name starts with
	// it and that no section names, after Names, alphabetically: a family
	// of flags (pg-…) whose new members find their section by themselves.
	Prefix string
}

// otherTitle heads the flags no section takes.
const otherTitle = "Other"

// helpWidth is the width the descriptions are wrapped to.
const helpWidth = 80

// Layout returns the flags of fs section by section: each flag once, in the
// first section that names it or, failing that, whose prefix it has; the
// flags no section takes come last under "Other". Names of flags fs does
// not define are left out.
func Layout(fs *flag.FlagSet, sections []Section) []Section {
	taken := map[string]bool{}
	out := make([]Section, 0, len(sections)+1)
	for _, s := range sections {
		o := Section{Title: s.Title}
		for _, n := range s.Names {
			if fs.Lookup(n) != nil && !taken[n] {
				taken[n] = true
				o.Names = append(o.Names, n)
			}
		}
		out = append(out, o)
	}
	// Prefixes after every named flag: a flag a section names is never
	// taken by another's prefix.
	for i, s := range sections {
		if s.Prefix == "" {
			continue
		}
		fs.VisitAll(func(f *flag.Flag) {
			if !taken[f.Name] && strings.HasPrefix(f.Name, s.Prefix) {
				taken[f.Name] = true
				out[i].Names = append(out[i].Names, f.Name)
			}
		})
	}
	other := Section{Title: otherTitle}
	fs.VisitAll(func(f *flag.Flag) {
		if !taken[f.Name] {
			other.Names = append(other.Names, f.Name)
		}
	})
	if len(other.Names) > 0 {
		out = append(out, other)
	}
	return slices.DeleteFunc(out, func(s Section) bool { return len(s.Names) == 0 })
}

// PrintFlags writes the flags of fs to w, section by section (see Layout;
// all in one list, alphabetically, when sections is nil): for each, its
// name and kind of value, its default and its environment variable, then
// its description.
func PrintFlags(w io.Writer, fs *flag.FlagSet, sections []Section) {
	if sections == nil {
		sections = []Section{{}}
		fs.VisitAll(func(f *flag.Flag) { sections[0].Names = append(sections[0].Names, f.Name) })
	}
	for i, s := range Layout(fs, sections) {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if s.Title != "" {
			fmt.Fprintf(w, "%s:\n", s.Title)
		}
		for _, n := range s.Names {
			printFlag(w, fs.Lookup(n))
		}
	}
}

// printFlag writes one flag's entry in the help.
func printFlag(w io.Writer, f *flag.Flag) {
	kind, usage := valueKind(f)
	head := "  --" + f.Name
	if kind != "" {
		head += " " + kind
	}
	note := "env " + EnvName(f.Name)
	if def := defaultText(f); def != "" {
		note = "default " + def + "; " + note
	}
	fmt.Fprintf(w, "%s  (%s)\n", head, note)
	for _, l := range wrap(usage, helpWidth-8) {
		fmt.Fprintf(w, "        %s\n", l)
	}
}

// valueKind returns the word naming the kind of f's value ("" for a
// boolean) and its description: as flag.UnquoteUsage does, with a Size a
// "size" and a float a "number".
func valueKind(f *flag.Flag) (string, string) {
	kind, usage := flag.UnquoteUsage(f)
	if isBool(f) {
		return "", usage
	}
	if strings.Contains(f.Usage, "`") {
		return kind, usage // named by the description
	}
	switch f.Value.(type) {
	case *Size:
		kind = "size"
	}
	switch kind {
	case "float":
		kind = "number"
	case "duration":
		if isDuration(f) {
			return "duration", usage
		}
	}
	return kind, usage
}

// isDuration reports whether f's value is a time.Duration.
func isDuration(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(time.Duration)
	return ok
}

// defaultText returns f's default as the help shows it: a duration in its
// shortest form (168h, not 168h0m0s), a size with its unit (Size.String);
// "" for an empty string, which the help leaves out.
func defaultText(f *flag.Flag) string {
	if isDuration(f) {
		if d, err := time.ParseDuration(f.DefValue); err == nil {
			return FormatDuration(d)
		}
	}
	return f.DefValue
}

// FormatDuration writes d as time.Duration.String does, without its
// trailing zero units: 168h, 1h30m, 90s, 50ms, 0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// wrap splits s into lines of at most width bytes at spaces (a longer word
// makes a line of its own); it keeps s's own line breaks.
func wrap(s string, width int) []string {
	var lines []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			switch {
			case line == "":
				line = word
			case len(line)+1+len(word) > width:
				lines = append(lines, line)
				line = word
			default:
				line += " " + word
			}
		}
		lines = append(lines, line)
	}
	return lines
}
