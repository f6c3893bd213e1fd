// Package cliflag holds what the viewsync binary's commands share in
// reading their flags: every flag also settable by an environment variable
// (VIEWSYNC_ and the flag's name in upper case with '-' as '_'), sizes in
// bytes read and printed with units, the help (PrintFlags: the flags in
// sections, each with its default and its variable), an unknown flag
// answered with the nearest names, and the errors that make a usage error.
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

// EnvName returns the environment variable that sets a flag: VIEWSYNC_
// and the flag's name in upper case with '-' as '_'.
func EnvName(flagName string) string {
	return "VIEWSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then fills every flag not given on the command line
// from its environment variable. A parse error or a surplus argument is
// ErrUsage: the flag set printed why in a line or two (an unknown flag
// with the nearest names), not its usage, which only --help prints. A bad
// environment value wraps ErrBadFlag.
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
	// A bad value is said in a line, with a pointer to --help, rather
	// than with the whole usage; --help prints it.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			PrintFlags(fs.Output(), fs, nil)
		}
		return err
	case err != nil:
		fmt.Fprintf(fs.Output(), "run with --help for every flag\n")
		return ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%w: %s=%q: %w", ErrBadFlag, EnvName(f.Name), v, e)
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

// nearest returns the names of fs's flags closest to name, best first, at
// most three: those that contain it or are contained in it, and those
// within a few edits of it that no other is nearer than (max-bdy: max-body,
// not also max-id, one edit further).
func nearest(fs *flag.FlagSet, name string) []string {
	type cand struct {
		name     string
		d        int
		contains bool
	}
	var cands []cand
	best := -1
	fs.VisitAll(func(f *flag.Flag) {
		d := editDistance(name, f.Name)
		contains := len(name) >= 3 && (strings.Contains(f.Name, name) || strings.Contains(name, f.Name))
		if d <= max(2, len(name)/3) || contains {
			cands = append(cands, cand{f.Name, d, contains})
			if best < 0 || d < best {
				best = d
			}
		}
	})
	cands = slices.DeleteFunc(cands, func(c cand) bool { return c.d > best && !c.contains })
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
	_, env := os.LookupEnv(EnvName(name))
	return given || env
}

// Size is a flag value for a size in bytes: 1048576, 512KiB, 1MiB, 1MB.
// It prints with a unit (see String), so a flag's default shows as 4MiB.
type Size int64

// sizeUnits are the units a Size is written with, binary ones first, as
// String tries them.
var sizeUnits = []sizeUnit{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1000_000_000}, {"MB", 1000_000}, {"KB", 1000}}

// sizeUnit is a unit of sizes: its suffix and the bytes it stands for.
type sizeUnit struct {
	suffix string
	mult   int64
}

// String returns the size with the largest unit that writes it whole
// (4MiB, 512KiB, 3KB), else in bytes (1500B); 0 as 0. Set reads
// it back to the same size.
func (b *Size) String() string {
	n := int64(*b)
	if n == 0 {
		return "0"
	}
	for _, u := range sizeUnits {
		if n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// Set parses a size in bytes, with an optional unit: B, KB, MB, GB (powers
// of 1000) or KiB, MiB, GiB (powers of 1024).
func (b *Size) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range append(sizeUnits[:len(sizeUnits):len(sizeUnits)], sizeUnit{"B", 1}) {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return errors.New("not a size: want a whole number of bytes (1048576) or of a unit: KiB, MiB, GiB (1024s: 512KiB, 4MiB) or KB, MB, GB (1000s)")
	}
	*b = Size(n * mult)
	return nil
}
