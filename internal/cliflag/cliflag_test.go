package cliflag

import (
	"errors"
	"flag"
	"io"
	"testing"
)

func TestSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
	}{{"1048576", 1 << 20}, {"512KiB", 512 << 10}, {" 1 MiB ", 1 << 20}, {"2GiB", 2 << 30}, {"1MB", 1000_000}, {"3KB", 3000}, {"7B", 7}, {"0", 0}} {
		var s Size
		if err := s.Set(tt.in); err != nil || int64(s) != tt.want {
			t.Errorf("Set(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
		}
	}
	for _, bad := range []string{"", "-1", "lots", "1TiB", "1.5MiB", "9999999999GiB"} {
		var s Size
		if err := s.Set(bad); err == nil {
			t.Errorf("Set(%q) = %d, want an error", bad, s)
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
