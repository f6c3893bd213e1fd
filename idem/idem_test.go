package idem_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/idem"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"with inner space", true},
		{"~!@#$%^&*()", true},
		{strings.Repeat("k", 255), true},
		{strings.Repeat("k", 256), false},
		{"", false},
		{" lead", false},
		{"trail ", false},
		{"tab\t", false},
		{"nl\n", false},
		{"caf\u00e9", false},
		{"del\x7f", false},
	} {
		got, err := idem.ParseKey(tc.key, 0)
		if (err == nil) != tc.ok || (err == nil && got != tc.key) || (err != nil && !errors.Is(err, idem.ErrBadKey)) {
			t.Errorf("ParseKey(%q) = %q, %v; want ok %v", tc.key, got, err, tc.ok)
		}
	}
	if _, err := idem.ParseKey("abcd", 3); err == nil {
		t.Error("a key over the given limit was taken")
	}
}

func TestIDsAndFingerprints(t *testing.T) {
	if idem.ID("a", "b", "c") == idem.ID("ab", "", "c") {
		t.Error("IDs of different triples meet")
	}
	if idem.ID(idem.Scope("", true), "t", "k") == idem.ID(idem.Scope("", false), "t", "k") {
		t.Error("the anonymous scope meets a subject's")
	}
	if idem.Fingerprint([]byte("a"), []byte("b")) == idem.Fingerprint([]byte("ab")) {
		t.Error("fingerprints of different parts meet")
	}
	if n := len(idem.ID("s", "t", "k")); n != 64 {
		t.Errorf("id of %d bytes, want 64", n)
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	for _, a := range []idem.Answer{
		{Status: 200, ETag: `"7"`, Body: []byte(`{"version":7}`)},
		{Status: 412, Body: []byte(`{"error":{}}`)},
		{Status: 204},
	} {
		b, _ := a.AppendBinary(nil)
		got, err := idem.ParseAnswer(b)
		if err != nil || got.Status != a.Status || got.ETag != a.ETag || string(got.Body) != string(a.Body) {
			t.Errorf("round trip of %+v: %+v, %v", a, got, err)
		}
	}
	for _, b := range [][]byte{nil, {1}, {2, 0, 200, 0}, {1, 0, 200, 5, 'a'}} {
		if _, err := idem.ParseAnswer(b); err == nil {
			t.Errorf("ParseAnswer(%q) took it", b)
		}
	}
}

// clock is a test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func ok(body string) func(context.Context) (idem.Outcome, error) {
	return func(context.Context) (idem.Outcome, error) {
		return idem.Outcome{Answer: idem.Answer{Status: 200, Body: []byte(body)}}, nil
	}
}

func TestTable(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	tb := idem.New(idem.Options{TTL: time.Minute, MaxKeys: 3, Now: clk.Now})
	ctx := t.Context()
	a, rep, err := tb.Do(ctx, "k", "fp", ok("1"))
	if err != nil || rep || string(a.Body) != "1" {
		t.Fatalf("first: %s %v %v", a.Body, rep, err)
	}
	a, rep, err = tb.Do(ctx, "k", "fp", ok("2"))
	if err != nil || !rep || string(a.Body) != "1" {
		t.Fatalf("retry: %s %v %v", a.Body, rep, err)
	}
	if _, _, err := tb.Do(ctx, "k", "other", ok("3")); !errors.Is(err, idem.ErrKeyReused) {
		t.Fatalf("another request: %v", err)
	}
	// Expiry, driven by the clock.
	clk.add(time.Minute)
	if a, rep, _ := tb.Do(ctx, "k", "other", ok("4")); rep || string(a.Body) != "4" {
		t.Fatalf("after the TTL: %s replayed %v", a.Body, rep)
	}
	// Not remembered: 5xx, 429; an error.
	for _, st := range []int{500, 503, 429, 401} {
		tb.Do(ctx, "s", "fp", func(context.Context) (idem.Outcome, error) { return idem.Outcome{Answer: idem.Answer{Status: st}}, nil })
		if _, rep, _ := tb.Do(ctx, "s", "fp", ok("x")); rep {
			t.Errorf("an answer of status %d was remembered", st)
		}
		clk.add(2 * time.Minute)
	}
	tb.Do(ctx, "e", "fp", func(context.Context) (idem.Outcome, error) { return idem.Outcome{}, errors.New("boom") })
	if _, rep, _ := tb.Do(ctx, "e", "fp", ok("x")); rep {
		t.Error("a failed run was remembered")
	}
	// The bound.
	for _, k := range []string{"a", "b", "c", "d", "e2"} {
		tb.Do(ctx, k, "fp", ok(k))
	}
	if n := tb.Len(); n > 3 {
		t.Errorf("%d kept, want at most 3", n)
	}
	if _, rep, _ := tb.Do(ctx, "a", "fp", ok("again")); rep {
		t.Error("the oldest key past MaxKeys was replayed")
	}
}

func TestTableInFlight(t *testing.T) {
	tb := idem.New(idem.Options{MaxWait: time.Hour})
	release := make(chan struct{})
	var runs atomic.Int64
	run := func(context.Context) (idem.Outcome, error) {
		runs.Add(1)
		<-release
		return idem.Outcome{Answer: idem.Answer{Status: 200, Body: []byte("x")}}, nil
	}
	var wg sync.WaitGroup
	const n = 50
	replays := atomic.Int64{}
	for range n {
		wg.Go(func() {
			a, rep, err := tb.Do(t.Context(), "k", "fp", run)
			if err != nil || string(a.Body) != "x" {
				t.Errorf("%s %v", a.Body, err)
			}
			if rep {
				replays.Add(1)
			}
		})
	}
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// A waiter whose context ends gets ErrInFlight.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, _, err := tb.Do(ctx, "k", "fp", run); !errors.Is(err, idem.ErrInFlight) {
		t.Errorf("waiter past its time: %v", err)
	}
	close(release)
	wg.Wait()
	if runs.Load() != 1 || replays.Load() != n-1 {
		t.Errorf("%d runs, %d replays; want 1, %d", runs.Load(), replays.Load(), n-1)
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"a", "0f8fad5b-d9cb-469f-a165-70867728950e", "", " x", "x\x00", "caf\u00e9", strings.Repeat("k", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := idem.ParseKey(s, 0)
		if err != nil {
			if !errors.Is(err, idem.ErrBadKey) {
				t.Fatalf("error %v does not match ErrBadKey", err)
			}
			return
		}
		if k != s || len(k) == 0 || len(k) > idem.DefaultMaxKeyBytes || k[0] == ' ' || k[len(k)-1] == ' ' {
			t.Fatalf("took %q", s)
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] > 0x7e {
				t.Fatalf("took %q: byte %d", s, i)
			}
		}
		// A key taken is a valid HTTP header value and WebSocket string as
		// it is, and names one id.
		if idem.ID("s", "t", k) != idem.ID("s", "t", s) {
			t.Fatal("id differs")
		}
	})
}
