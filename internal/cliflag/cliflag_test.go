package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		str  string // how it prints
	}{
		{"1048576", 1 << 20, "1MiB"},
		{"4MiB", 4 << 20, "4MiB"},
		{"512KiB", 512 << 10, "512KiB"},
		{" 1 MiB ", 1 << 20, "1MiB"},
		{"2GiB", 2 << 30, "2GiB"},
		{"1536KiB", 1536 << 10, "1536KiB"},
		{"1MB", 1000_000, "1MB"},
		{"3KB", 3000, "3KB"},
		{"4096", 4096, "4KiB"},
		{"256", 256, "256B"},
		{"7B", 7, "7B"},
		{"1500", 1500, "1500B"},
		{"0", 0, "0"},
	} {
		var s Size
		if err := s.Set(tt.in); err != nil || int64(s) != tt.want {
			t.Errorf("Set(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
			continue
		}
		if got := s.String(); got != tt.str {
			t.Errorf("Size(%d).String() = %q, want %q", s, got, tt.str)
		}
		var back Size
		if err := back.Set(s.String()); err != nil || back != s {
			t.Errorf("Set(%q) = %d, %v; want %d back", s.String(), back, err, s)
		}
	}
	for _, bad := range []string{"", "-1", "lots", "1TiB", "1.5MiB", "MiB", "4 MiBs", "0x10", "9999999999GiB"} {
		var s Size
		err := s.Set(bad)
		if err == nil {
			t.Errorf("Set(%q) = %d, want an error", bad, s)
		} else if !strings.Contains(err.Error(), "not a size") || !strings.Contains(err.Error(), "MiB") {
			t.Errorf("Set(%q): %v; want an error saying what a size looks like", bad, err)
		}
	}
}

// TestSizeFlag: a bad size on the command line is a usage error naming
// the flag and what a size looks like.
func TestSizeFlag(t *testing.T) {
	var out strings.Builder
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(&out)
	var s Size
	fs.Var(&s, "max-body", "")
	if err := Parse(fs, []string{"--max-body", "4 megs"}); !errors.Is(err, ErrUsage) {
		t.Errorf("Parse = %v, want ErrUsage", err)
	}
	if got := out.String(); !strings.Contains(got, "max-body") || !strings.Contains(got, "not a size") {
		t.Errorf("said %q; want the flag and why", got)
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{168 * time.Hour, "168h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
		{10 * time.Minute, "10m"},
		{90 * time.Second, "1m30s"},
		{10 * time.Second, "10s"},
		{50 * time.Millisecond, "50ms"},
		{0, "0s"},
	} {
		if got := FormatDuration(tt.d); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	newSet := func() (*flag.FlagSet, *int, *Size) {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		n := fs.Int("max-things", 1, "")
		var s Size
		fs.Var(&s, "buffer-bytes", "")
		return fs, n, &s
	}
	t.Setenv("VIEWSYNC_MAX_THINGS", "5")
	t.Setenv("VIEWSYNC_BUFFER_BYTES", "2KiB")
	fs, n, s := newSet()
	if err := Parse(fs, []string{"--max-things", "3"}); err != nil || *n != 3 || *s != 2<<10 {
		t.Errorf("Parse = %v: max-things %d, buffer-bytes %d; want 3 (the command line wins) and 2048", err, *n, *s)
	}
	if !Given(fs, "max-things") || !Given(fs, "buffer-bytes") {
		t.Error("Given: a flag set on the command line or by the environment is not given")
	}
	if fs, _, _ := newSet(); !errors.Is(Parse(fs, []string{"surplus"}), ErrUsage) {
		t.Error("a surplus argument is not ErrUsage")
	}
	if fs, _, _ := newSet(); !errors.Is(Parse(fs, []string{"--nope"}), ErrUsage) {
		t.Error("an unknown flag is not ErrUsage")
	}
	if fs, _, _ := newSet(); !errors.Is(Parse(fs, []string{"--help"}), flag.ErrHelp) {
		t.Error("--help is not flag.ErrHelp")
	}
	t.Setenv("VIEWSYNC_BUFFER_BYTES", "lots")
	if fs, _, _ := newSet(); !errors.Is(Parse(fs, nil), ErrBadFlag) {
		t.Error("a bad environment value is not ErrBadFlag")
	}
}

// TestUnknownFlag: an unknown flag is answered with its name and the
// nearest flags, not the whole usage; flags' values, known flags after a
// value and arguments after the flags are not taken for flags.
func TestUnknownFlag(t *testing.T) {
	newSet := func(out io.Writer) *flag.FlagSet {
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(out)
		fs.Usage = func() { fmt.Fprint(out, "THE WHOLE USAGE\n") }
		fs.String("addr", "", "")
		fs.Int("max-conns", 0, "")
		fs.Int("max-conns-per-ip", 0, "")
		fs.Bool("demo", true, "")
		fs.String("cors-origin", "", "")
		fs.Int("max-body", 0, "")
		fs.Int("max-id", 0, "")
		return fs
	}
	for _, tt := range []struct {
		args     []string
		want     []string // in the output, in order; nil: parsed without error
		unwanted string
	}{
		{args: []string{"--max-con", "3"}, want: []string{"not defined: -max-con", "did you mean --max-conns, --max-conns-per-ip?", "--help"}},
		{args: []string{"-adr=x"}, want: []string{"not defined: -adr", "did you mean --addr?"}},
		{args: []string{"--cors-origins", "https://a"}, want: []string{"not defined: -cors-origins", "--cors-origin?"}},
		{args: []string{"--max-bdy", "1"}, want: []string{"not defined: -max-bdy", "did you mean --max-body?\n"}},     // not also max-id, an edit further
		{args: []string{"--max-conns", "many"}, want: []string{`invalid value "many" for flag -max-conns`, "--help"}}, // a bad value: no usage either
		{args: []string{"--zzzzzzzzzz"}, want: []string{"not defined: -zzzzzzzzzz", "--help"}, unwanted: "did you mean"},
		{args: []string{"--demo", "--nope"}, want: []string{"not defined: -nope"}},
		{args: []string{"--addr", "--nope"}},                  // a value, not a flag
		{args: []string{"--demo=false", "--max-conns", "-1"}}, // a negative value
	} {
		var out strings.Builder
		err := Parse(newSet(&out), tt.args)
		if tt.want == nil {
			if err != nil {
				t.Errorf("Parse(%q) = %v, %q; want no error", tt.args, err, out.String())
			}
			continue
		}
		if !errors.Is(err, ErrUsage) {
			t.Errorf("Parse(%q) = %v, want ErrUsage", tt.args, err)
		}
		got := out.String()
		rest := got
		for _, w := range tt.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("Parse(%q) said %q, want %q in it (in order)", tt.args, got, w)
				break
			}
			rest = rest[i+len(w):]
		}
		if strings.Contains(got, "THE WHOLE USAGE") || tt.unwanted != "" && strings.Contains(got, tt.unwanted) {
			t.Errorf("Parse(%q) said %q", tt.args, got)
		}
	}
}
