// Package cliflag holds what the viewsync binary's commands share in
// reading their flags: every flag also settable by an environment variable
// (VIEWSYNC_ and the flag's name in upper case with '-' as '_'), sizes in
// bytes written with units, and the errors that make a usage error.
package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrUsage reports bad command-line use; the message was already printed.
var ErrUsage = errors.New("usage")

// ErrBadFlag reports a flag or environment value that parsed but is not
// allowed; the process exits 2, like for other usage errors.
var ErrBadFlag = errors.New("bad flag value")

// envName returns the environment variable that sets a flag.
func envName(flagName string) string {
	return "VIEWSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then fills every flag not given on the command line
// from its environment variable. A parse error or a surplus argument is
// ErrUsage (the flag set printed why); a bad environment value wraps
// ErrBadFlag.
func Parse(fs *flag.FlagSet, args []string) error {
	if name, ok := unknownFlag(fs, args); ok {
		// Said in a few lines, with the nearest names, rather than with
		// the flag set's whole usage.
		fmt.Fprintf(fs.Output(), "flag provided but not defined: -%s\n", name)
		if near := nearest(fs, name); len(near) > 0 {
			fmt.Fprintf(fs.Output(), "did you mean --%s?\n", strings.Join(near, ", --"))
		}
		fmt.Fprintf(fs.Output(), "run with --help for every flag\n")
		return ErrUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%w: %s=%q: %w", ErrBadFlag, envName(f.Name), v, e)
			}
		}
	})
	return err
}

// unknownFlag returns the first flag of args, as fs would parse them,
// that fs does not define (help and h aside, which ask for the usage).
func unknownFlag(fs *flag.FlagSet, args []string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return "", false // the flags end here
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		f := fs.Lookup(name)
		switch {
		case f == nil && name != "help" && name != "h":
			return name, true
		case f == nil || hasValue:
		case isBool(f):
		default:
			i++ // its value is the next argument
		}
	}
	return "", false
}

// isBool reports whether f is a boolean flag, which takes no argument.
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// nearest returns the names of fs's flags closest to name: those within a
// few edits of it, or that contain it or are contained in it, best first,
// at most three.
func nearest(fs *flag.FlagSet, name string) []string {
	type cand struct {
		name string
		d    int
	}
	var cands []cand
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		if d <= max(2, len(name)/3) || len(name) >= 3 && (strings.Contains(f.Name, name) || strings.Contains(name, f.Name)) {
			cands = append(cands, cand{f.Name, d})
		}
	})
	slices.SortStableFunc(cands, func(a, b cand) int { return a.d - b.d })
	var out []string
	for _, c := range cands[:min(len(cands), 3)] {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Given reports whether the flag was set on the command line or by its
// environment variable.
func Given(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	_, env := os.LookupEnv(envName(name))
	return given || env
}

// Size is a flag value for a size in bytes: 1048576, 512KiB, 1MiB, 1MB.
type Size int64

// String returns the size in bytes.
func (b *Size) String() string { return strconv.FormatInt(int64(*b), 10) }

// Set parses a size in bytes, with an optional unit: B, KB, MB, GB (powers
// of 1000) or KiB, MiB, GiB (powers of 1024).
func (b *Size) Set(s string) error {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("not a size: want bytes like 1048576 or 1MiB")
	}
	*b = Size(n * mult)
	return nil
}
