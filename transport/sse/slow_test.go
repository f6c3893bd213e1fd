package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/transport/sse"
)

// rawConn opens a TCP connection to the server with a small receive buffer
// and sends a GET for an event stream on it. The connection is closed when
// the test ends.
func (e *env) rawConn(path string, recvBuffer int) *net.TCPConn {
	e.t.Helper()
	addr := e.srv.Listener.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	tc := c.(*net.TCPConn)
	e.t.Cleanup(func() { tc.Close() })
	if err := tc.SetReadBuffer(recvBuffer); err != nil {
		e.t.Fatalf("set receive buffer: %v", err)
	}
	if _, err := fmt.Fprintf(tc, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr); err != nil {
		e.t.Fatalf("send request: %v", err)
	}
	return tc
}

// throttled reads at most n bytes at a time, each read after a pause: a
// client on a slow link, or busy.
type throttled struct {
	r     io.Reader
	n     int
	pause time.Duration
}

func (t throttled) Read(p []byte) (int, error) {
	time.Sleep(t.pause)
	return t.r.Read(p[:min(len(p), t.n)])
}

// TestSlowSubscriber has a writer commit ~4 KiB values as fast as a fast
// client follows, while a slow client reads a little at a time: the fast
// client gets every commit, the slow one falls behind the topic's 64 KiB
// buffer and gets catch-ups instead of the backlog, and both end in the
// store's state.
func TestSlowSubscriber(t *testing.T) {
	e := newEnv(t, config{
		Fanout: fanout.Options{BufferBytes: 64 << 10},
		// Bounded socket buffers, so that the slow client's lag reaches the
		// server (loopback send buffers grow to megabytes otherwise). Not
		// much below the loopback segment size (64 KiB), though, or TCP
		// itself slows to a crawl.
		SendBuffer: 256 << 10,
	})
	fast := e.follow("items", "", nil, nil)
	fast.waitStarted()

	slowConn := e.rawConn("/v1/collections/items/events", 64<<10)
	var (
		slowVersion atomic.Uint64
		slowStarted atomic.Bool
		slowView    = newView()
		slowErr     error
		slowDone    = make(chan struct{})
	)
	go func() {
		defer close(slowDone)
		br := bufio.NewReaderSize(throttled{r: slowConn, n: 4 << 10, pause: 10 * time.Millisecond}, 4<<10)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			slowErr = err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			slowErr = fmt.Errorf("status %d", resp.StatusCode)
			return
		}
		slowErr = readEvents(bufio.NewReader(resp.Body), func(ev event) bool {
			if err := slowView.apply(ev); err != nil {
				slowErr = err
				return false
			}
			slowStarted.Store(slowView.started)
			slowVersion.Store(slowView.version)
			return true
		})
	}()
	waitFor(t, "the slow client's first event", func() bool {
		select {
		case <-slowDone:
			t.Fatalf("slow client: %v", slowErr)
		default:
		}
		return slowStarted.Load()
	})

	const commits, ids = 1000, 50
	pad := strings.Repeat("x", 4<<10)
	start := time.Now()
	for i := range commits {
		v, err := e.coll.Put(context.Background(), fmt.Sprintf("r%d", i%ids), json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad)))
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		// Commit as fast as the fast client follows: it stays within two
		// commits of the head, well inside the buffer.
		if v.Version > 2 {
			fast.waitVersion(v.Version - 2)
		}
	}
	hd := e.head()
	lagAtEnd := hd.Version - slowVersion.Load()
	t.Logf("wrote %d commits in %s; the slow client was %d commits behind", commits, time.Since(start).Round(time.Millisecond), lagAtEnd)

	fast.waitVersion(hd.Version)
	waitFor(t, "the slow client to reach the head", func() bool {
		select {
		case <-slowDone:
			return true // failed: reported below
		default:
			return slowVersion.Load() == hd.Version
		}
	})
	slowConn.Close()
	<-slowDone
	if slowVersion.Load() != hd.Version {
		t.Fatalf("slow client stopped at version %d of %d: %v", slowVersion.Load(), hd.Version, slowErr)
	}

	_, want := e.snapshot()
	f := fast.state()
	t.Logf("fast client: %d commits, %d catch-ups, %d resets", f.commits, f.catchups, f.resets)
	t.Logf("slow client: %d commits, %d catch-ups, %d resets", slowView.commits, slowView.catchups, slowView.resets)
	if f.commits != commits || f.catchups != 0 || f.resets != 1 {
		t.Errorf("fast client: %d commits, %d catch-ups, %d resets; want %d, 0, 1", f.commits, f.catchups, f.resets, commits)
	}
	if !maps.Equal(f.records, want) {
		t.Errorf("fast client's state differs from the store's")
	}
	if slowView.catchups < 1 {
		t.Errorf("the slow client got no catch-up (%d commits)", slowView.commits)
	}
	if !maps.Equal(slowView.records, want) {
		t.Errorf("slow client's state (%d records) differs from the store's (%d)", len(slowView.records), len(want))
	}
	if slowErr != nil && !isClosedConn(slowErr) {
		t.Errorf("slow client: %v", slowErr)
	}
}

// isClosedConn tells the error of reading a connection the test closed.
func isClosedConn(err error) bool {
	return strings.Contains(err.Error(), "use of closed network connection")
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStalledSubscriberIsCutOff connects a client that never reads, with
// a tiny receive buffer, while a writer pushes ~50 MB of 64 KiB commits:
// the server cuts it off once a write blocks past WriteTimeout, another
// client keeps receiving, and the heap stays bounded.
func TestStalledSubscriberIsCutOff(t *testing.T) {
	var logs syncBuffer
	const bufferBytes = 2 << 20
	e := newEnv(t, config{
		SSE: sse.Options{
			WriteTimeout: 200 * time.Millisecond,
			Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		},
		Fanout:     fanout.Options{BufferBytes: bufferBytes},
		Store:      store.Config{RetainCommits: 64},
		SendBuffer: 256 << 10,
	})
	// The other client is served by a handler of its own on the same hub,
	// with the default write bound: on a loaded machine its reader may be
	// starved of CPU for longer than 200ms, which would rightly cut it
	// off too. What it shows is that the topic and the writer go on
	// regardless of the stalled client.
	patient := e.mount("/patient", sse.Options{})
	other := e.follow("/patient/v1/collections/items/events", "", nil, &view{records: map[string]string{}, idsOnly: true})
	other.waitStarted()
	e.rawConn("/v1/collections/items/events", 4<<10) // never read
	e.waitConnections(1)
	if patient.Connections() != 1 {
		t.Fatalf("patient handler: Connections() = %d, want 1", patient.Connections())
	}

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base, peak := heap(), uint64(0)

	const total, ids = 50 << 20, 16
	value := json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 64<<10)))
	deadline := time.Now().Add(waitTimeout)
	cutAt := uint64(0)
	pushed := 0
	for i := 0; pushed < total || cutAt == 0; i++ {
		rec, err := e.coll.Put(context.Background(), fmt.Sprintf("r%d", i%ids), value)
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		pushed += len(value)
		if cutAt == 0 && e.h.Connections() == 0 {
			cutAt = rec.Version
		}
		if i%100 == 99 {
			peak = max(peak, heap())
		}
		if cutAt == 0 && time.Now().After(deadline) {
			t.Fatalf("the stalled client was not cut off within %s (%d MB pushed)", waitTimeout, pushed>>20)
		}
	}
	peak = max(peak, heap())
	// The other client keeps receiving after the cut.
	for i := range 10 {
		e.put("after", i)
	}
	hd := e.head()
	defer func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	}()
	other.waitVersion(hd.Version)
	o := other.state()
	t.Logf("pushed %d MB in %d commits; stalled client cut off at version %d; other client: %d commits, %d catch-ups",
		pushed>>20, hd.Version, cutAt, o.commits, o.catchups)
	if e.h.Connections() != 0 || patient.Connections() != 1 {
		t.Errorf("Connections() = %d and %d, want 0 and 1", e.h.Connections(), patient.Connections())
	}
	if want := "client stalled: write blocked longer than 200ms"; !strings.Contains(logs.String(), want) {
		t.Errorf("no log of %q in:\n%s", want, logs.String())
	}

	// The bound: the topic keeps at most BufferBytes of frames (2 MiB,
	// counted as twice each commit's JSON, so about 1 MiB of JSON plus its
	// SSE encoding), the other stream holds at most one batch of those
	// same frames, and bbolt's write transactions and the HTTP and test
	// parser buffers add a few MiB; the heap is measured after a GC. 64 MiB
	// is many times that, yet below what keeping the stalled client's
	// backlog would cost: the 50 MB pushed, held as JSON and again as SSE
	// bytes.
	const bound = 64 << 20
	growth := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB at start, %d MiB at peak (growth %d MiB, bound %d MiB)", base>>20, peak>>20, growth>>20, bound>>20)
	if growth > bound {
		t.Errorf("heap grew by %d MiB pushing %d MB to a stalled client, bound %d MiB", growth>>20, pushed>>20, bound>>20)
	}
}

// slowSnapshots delays every snapshot, honouring the context as a store
// does: a reset then takes longer than a ping interval to read.
type slowSnapshots struct {
	store.Store
	delay time.Duration
	calls atomic.Int32
}

func (s *slowSnapshots) Snapshot(ctx context.Context, collection string) (protocol.Snapshot, error) {
	s.calls.Add(1)
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return protocol.Snapshot{}, fmt.Errorf("slow snapshot of %s: %w", collection, ctx.Err())
	}
	return s.Store.Snapshot(ctx, collection)
}

// TestSlowResetStillArrives: a reset whose snapshot takes six ping
// intervals to read is read once, whole: the ping interval bounds only the
// wait for new commits, never a store read, so the read is not retried.
func TestSlowResetStillArrives(t *testing.T) {
	slow := &slowSnapshots{delay: 300 * time.Millisecond}
	e := newEnv(t, config{
		SSE:  sse.Options{PingInterval: 50 * time.Millisecond},
		Wrap: func(s store.Store) store.Store { slow.Store = s; return slow },
	})
	e.put("a", 1)
	cl := e.newClient("items", "", nil)
	pings := 0
	for {
		ev := cl.next()
		if ev.IsComment {
			pings++
			continue
		}
		if ev.Event == "reset" {
			break
		}
	}
	if slow.calls.Load() != 1 {
		t.Fatalf("reset after %d pings and %d snapshot attempts; want one attempt, never cut short", pings, slow.calls.Load())
	}
	t.Logf("reset after %d pings and %d snapshot attempts", pings, slow.calls.Load())
	// Idle again: pings keep coming.
	for range 2 {
		if ev := cl.next(); !ev.IsComment {
			t.Fatalf("got %+v, want a ping", ev)
		}
	}
}
