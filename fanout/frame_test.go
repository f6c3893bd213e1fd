package fanout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/memstore"
)

// frameCommit is a commit with both kinds of op, a value written with
// insignificant whitespace (a newline among it) and a string that needs
// escaping.
var frameCommit = protocol.Commit{
	Version: 42,
	At:      time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC),
	Ops: []protocol.Op{
		{Op: protocol.OpPut, ID: "a", Value: json.RawMessage("{ \"x\" :\n 1, \"s\": \"l1\\nl2\" }")},
		{Op: protocol.OpDelete, ID: "b"},
	},
}

// frameJSON is frameCommit as the contract encodes it: compact, on one line.
const frameJSON = `{"version":42,"at":"2024-05-06T07:08:09.123Z","ops":[{"op":"put","id":"a","value":{"x":1,"s":"l1\nl2"}},{"op":"delete","id":"b"}]}`

// tagEncoder is a wire format for the tests: the commit's JSON after a
// tag. It counts its encodings.
type tagEncoder struct {
	tag   string
	calls *atomic.Int32
}

func (e tagEncoder) EncodeFrame(f *fanout.Frame) []byte {
	e.calls.Add(1)
	return append([]byte(e.tag), f.JSON()...)
}

func TestFrameEncodings(t *testing.T) {
	f, err := fanout.NewFrame("products", "E-1_x", frameCommit)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version() != 42 || f.Collection != "products" || f.Epoch != "E-1_x" {
		t.Errorf("frame = %s:%s:%d, want products:E-1_x:42", f.Collection, f.Epoch, f.Version())
	}

	want, err := json.Marshal(frameCommit)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.JSON(), want) {
		t.Errorf("JSON() = %s\nwant json.Marshal = %s", f.JSON(), want)
	}
	if string(f.JSON()) != frameJSON {
		t.Errorf("JSON() = %s\nwant %s", f.JSON(), frameJSON)
	}
	// One line, whatever the value's whitespace was.
	if bytes.ContainsAny(f.JSON(), "\r\n") {
		t.Errorf("JSON() spans lines: %q", f.JSON())
	}

	// Each encoder's encoding is made once; later calls return the same
	// bytes, not a copy, and other encoders get their own.
	var calls atomic.Int32
	a, b := tagEncoder{"a:", &calls}, tagEncoder{"b:", &calls}
	a1, b1 := f.Encoding(a), f.Encoding(b)
	if string(a1) != "a:"+frameJSON || string(b1) != "b:"+frameJSON {
		t.Errorf("Encoding = %s and %s", a1, b1)
	}
	if unsafe.SliceData(a1) != unsafe.SliceData(f.Encoding(a)) || unsafe.SliceData(b1) != unsafe.SliceData(f.Encoding(b)) {
		t.Error("Encoding encodes again on every call")
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d encodings for two encoders", n)
	}
}

func TestFrameEncodesOnceUnderConcurrency(t *testing.T) {
	f, err := fanout.NewFrame(coll, "e", frameCommit)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	encs := []fanout.Encoder{tagEncoder{"a:", &calls}, tagEncoder{"b:", &calls}, tagEncoder{"c:", &calls}}
	const n = 16
	got := make([][]*byte, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			got[i] = make([]*byte, len(encs))
			for j := range encs {
				k := (i + j) % len(encs) // each goroutine in another order
				got[i][k] = unsafe.SliceData(f.Encoding(encs[k]))
			}
		})
	}
	close(start)
	wg.Wait()
	for i := 1; i < n; i++ {
		for k := range encs {
			if got[i][k] != got[0][k] {
				t.Fatalf("goroutine %d got its own encoding %d", i, k)
			}
		}
	}
	if c := calls.Load(); c != int32(len(encs)) {
		t.Fatalf("%d encodings by %d encoders", c, len(encs))
	}
}

// TestFrameSharedBySubscribers: a published commit reaches every subscriber
// as the same *Frame, so each wire format is encoded once however many
// subscribers there are.
func TestFrameSharedBySubscribers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open opener) {
		st := open(store.Config{})
		b := newBroker(t, st, fanout.Options{})
		first := apply(t, st, put("r", `1`))
		const nsubs = 5
		subs := make([]*fanout.Subscription, nsubs)
		for i := range subs {
			subs[i] = subscribe(t, b, &protocol.Cursor{Epoch: first.Epoch})
			if ev := next(t, subs[i]); ev.Kind != fanout.EventCommits || len(ev.Frames) != 1 || ev.Frames[0].Version() != 1 {
				t.Fatalf("subscriber %d: first event %s, want commit 1", i, describe(ev))
			}
		}
		aps := applyN(t, st, 10)
		for _, ap := range aps {
			publish(b, ap)
		}
		got := make([][]*fanout.Frame, nsubs)
		for i, s := range subs {
			for s.Cursor().Version < 11 {
				ev := next(t, s)
				if ev.Kind != fanout.EventCommits {
					t.Fatalf("subscriber %d: %s, want commits", i, describe(ev))
				}
				got[i] = append(got[i], ev.Frames...)
			}
			if vs := versions(got[i]); fmt.Sprint(vs) != fmt.Sprint(span(2, 11)) {
				t.Fatalf("subscriber %d got versions %v, want 2..11", i, vs)
			}
		}
		for j, ap := range aps {
			want, _ := json.Marshal(ap.Commit)
			if !bytes.Equal(got[0][j].JSON(), want) {
				t.Errorf("version %d: JSON %s, want %s", ap.Commit.Version, got[0][j].JSON(), want)
			}
			for i := 1; i < nsubs; i++ {
				if got[i][j] != got[0][j] {
					t.Errorf("version %d: subscriber %d got frame %p, subscriber 0 %p", ap.Commit.Version, i, got[i][j], got[0][j])
				}
			}
		}
	})
}

// TestFrameSharedThroughHub: the same through the root package, whose
// Commit publishes after the store applied the commit.
func TestFrameSharedThroughHub(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	h, err := viewsync.New(st)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c, err := h.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	const nsubs = 3
	subs := make([]*fanout.Subscription, nsubs)
	for i := range subs {
		s, err := c.Subscribe(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[i] = s
		if ev := next(t, s); ev.Kind != fanout.EventReset || ev.Reset.Version != 0 {
			t.Fatalf("subscriber %d: first event %s, want reset at 0", i, describe(ev))
		}
	}
	// Let the topic read its head before the commits, so that all of them
	// go through its buffer.
	expectNothing(t, subs[0])
	var commits []viewsync.Commit
	for i := range 5 {
		cm, err := c.Commit(context.Background(), []viewsync.Op{viewsync.Put(fmt.Sprintf("k%d", i), []byte(`{"i":1}`))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, cm)
	}
	got := make([][]*fanout.Frame, nsubs)
	for i, s := range subs {
		for s.Cursor().Version < 5 {
			got[i] = append(got[i], next(t, s).Frames...)
		}
	}
	for j, cm := range commits {
		want, _ := json.Marshal(cm)
		if !bytes.Equal(got[0][j].JSON(), want) {
			t.Errorf("version %d: JSON %s, want %s", cm.Version, got[0][j].JSON(), want)
		}
		for i := 1; i < nsubs; i++ {
			if got[i][j] != got[0][j] {
				t.Errorf("version %d: subscriber %d got another frame than subscriber 0", cm.Version, i)
			}
		}
	}
}

// publishAllocs measures the allocations of one Publish with nsubs
// subscribers, each standing at the head. With parked set each waits in Next
// on its own goroutine and takes every commit, so its allocations count too.
func publishAllocs(t *testing.T, nsubs int, parked bool) float64 {
	t.Helper()
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	first := apply(t, st, put("r", `0`))
	var wg sync.WaitGroup
	defer wg.Wait()
	for range nsubs {
		s, err := b.Subscribe(coll, &protocol.Cursor{Epoch: first.Epoch})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		next(t, s) // commit 1, from the store; the topic now holds the head
		if parked {
			wg.Go(func() {
				for {
					if _, err := s.Next(context.Background()); err != nil {
						return
					}
				}
			})
		}
	}
	aps := applyN(t, st, allocRuns+1)
	i := 0
	return mallocsPerRun(allocRuns, func() {
		publish(b, aps[i])
		i++
	})
}

// allocRuns is how many calls an allocation measure averages over.
const allocRuns = 1000

// mallocsPerRun is testing.AllocsPerRun without its rounding down: the
// race detector makes sync.Pool drop items at random (encoding/json pools
// its encoders), so a measure may be a fraction above its floor, and
// rounding could split two equal measures across an integer.
func mallocsPerRun(runs int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.Mallocs-before.Mallocs) / float64(runs)
}

// sameAllocs reports whether two measures differ by less than one
// allocation per call: any work per subscriber would cost at least one
// allocation per subscriber.
func sameAllocs(a, b float64) bool { return math.Abs(a-b) < 0.5 }

// TestPublishAllocsIndependentOfSubscribers: a commit is encoded once
// (NewFrame runs once per commit) and subscribers hold only a cursor, so
// publishing allocates the same with 1 subscriber as with 100, whether they
// are idle or each takes every commit on its own goroutine.
func TestPublishAllocsIndependentOfSubscribers(t *testing.T) {
	one := publishAllocs(t, 1, false)
	hundred := publishAllocs(t, 100, false)
	t.Logf("allocs per publish: %v with 1 subscriber, %v with 100", one, hundred)
	if !sameAllocs(one, hundred) {
		t.Errorf("Publish allocates %v times with 1 idle subscriber, %v with 100", one, hundred)
	}
	if one < 1 {
		t.Error("Publish allocates nothing: the measure is broken")
	}
	parked1 := publishAllocs(t, 1, true)
	parked100 := publishAllocs(t, 100, true)
	t.Logf("allocs per publish with subscribers taking every commit: %v with 1, %v with 100", parked1, parked100)
	if !sameAllocs(parked1, one) || !sameAllocs(parked100, one) {
		t.Errorf("Publish plus delivery allocates %v times with 1 subscriber in Next, %v with 100; want %v (Next must not allocate)", parked1, parked100, one)
	}
}

// TestNextDoesNotAllocate: taking commits from the buffer costs a
// subscriber no allocation in steady state: publishing a commit and taking
// it allocates exactly what publishing alone does.
func TestNextDoesNotAllocate(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	first := apply(t, st, put("r", `0`))
	s, err := b.Subscribe(coll, &protocol.Cursor{Epoch: first.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next(t, s)
	aps := applyN(t, st, allocRuns+1)
	ctx := context.Background()
	i := 0
	both := mallocsPerRun(allocRuns, func() {
		publish(b, aps[i])
		i++
		ev, err := s.Next(ctx)
		if err != nil || len(ev.Frames) != 1 || ev.Frames[0].Version() != aps[i-1].Commit.Version {
			t.Fatalf("Next = %s, %v; want commit %d", describe(ev), err, aps[i-1].Commit.Version)
		}
	})
	alone := publishAllocs(t, 1, false)
	if !sameAllocs(both, alone) {
		t.Errorf("Publish+Next allocates %v times, Publish alone %v: Next allocates", both, alone)
	}
}

// TestPublishWithoutSubscribers: publishing to a collection nobody follows
// does nothing: no topic, no encoding, no allocation.
func TestPublishWithoutSubscribers(t *testing.T) {
	st := memstore.New(nil)
	defer st.Close()
	b := fanout.New(st, nil)
	defer b.Close()
	aps := applyN(t, st, 101)
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		publish(b, aps[i])
		i++
	})
	if allocs != 0 {
		t.Errorf("Publish without subscribers allocates %v times", allocs)
	}
	if n := b.Topics(); n != 0 {
		t.Errorf("Topics() = %d after publishing without subscribers, want 0", n)
	}
	if _, _, ok := b.BufferRange(coll); ok {
		t.Error("a topic exists for a collection without subscribers")
	}
	// Nothing is lost: a subscriber resuming from before those commits
	// reads them from the store.
	s := subscribe(t, b, &protocol.Cursor{Epoch: aps[0].Epoch, Version: 99})
	if ev := next(t, s); ev.Kind != fanout.EventCommits || fmt.Sprint(versions(ev.Frames)) != "[100 101]" {
		t.Errorf("resume at 99: %s, want commits 100..101", describe(ev))
	}
}
