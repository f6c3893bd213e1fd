package viewsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/memstore"
)

// counterSource is a Source whose positions are counts ("3"): Apply
// commits to its feeds at the next position, then says it is applied.
type counterSource struct {
	feeds []*viewsync.Feed

	// waits gets a value (when it has room) each time Await waits.
	waits chan struct{}

	mu      sync.Mutex
	applied uint64
	changed chan struct{}
	closed  bool
}

func newCounterSource(t *testing.T, hub *viewsync.Hub, colls ...string) *counterSource {
	s := &counterSource{changed: make(chan struct{}), waits: make(chan struct{}, 1)}
	for _, c := range colls {
		f, err := hub.Feed(c, "a counter", "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.Close)
		s.feeds = append(s.feeds, f)
	}
	return s
}

// Apply commits op to the feed i at the next position and returns it.
func (s *counterSource) Apply(ctx context.Context, i int, op viewsync.Op) (uint64, error) {
	s.mu.Lock()
	next := s.applied + 1
	s.mu.Unlock()
	if _, err := s.feeds[i].Commit(ctx, []viewsync.Op{op}, []byte(strconv.FormatUint(next, 10))); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = next
	close(s.changed)
	s.changed = make(chan struct{})
	return next, nil
}

func (s *counterSource) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *counterSource) Await(ctx context.Context, pos string) error {
	want, err := strconv.ParseUint(pos, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not a count", viewsync.ErrBadPosition, pos)
	}
	for {
		s.mu.Lock()
		done, closed, ch := s.applied >= want, s.closed, s.changed
		s.mu.Unlock()
		switch {
		case done:
			return nil
		case closed:
			return viewsync.ErrClosed
		}
		select {
		case s.waits <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (s *counterSource) Collections() []string {
	var out []string
	for _, f := range s.feeds {
		out = append(out, f.Collection())
	}
	return out
}

// awaitHandler is a call handler that wrote to the source's system: it
// sends pos to written, then awaits pos and the collections its arg names
// (a JSON array; none: null) and answers Call.Versions.
func awaitHandler(pos string, written chan<- string) viewsync.CallFunc {
	return func(ctx context.Context, call *viewsync.Call) (any, error) {
		written <- pos
		var colls []string
		if err := json.Unmarshal(call.Arg, &colls); err != nil {
			return nil, err
		}
		if err := call.Await(ctx, "", pos, colls...); err != nil {
			return nil, err
		}
		return call.Versions(), nil
	}
}

// TestCallAwait: a handler that wrote to the source's system awaits the
// position its write got; the call's answer comes only once the source
// applied it, and carries the versions of the source's collections then —
// every one, or those the handler names.
func TestCallAwait(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		arg  string
		want map[string]uint64
	}{
		{`null`, map[string]uint64{"products": 2, "orders": 0}},
		{`["products"]`, map[string]uint64{"products": 2}},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			hub := newHub(t, memstore.New(nil))
			src := newCounterSource(t, hub, "products", "orders")
			if err := hub.AddSource("counter", src, nil); err != nil {
				t.Fatal(err)
			}
			if err := hub.AddSource("counter", src, nil); err == nil {
				t.Fatal("a second source under the same name was added")
			}
			written := make(chan string, 1)
			if err := hub.HandleCall("write", awaitHandler("2", written)); err != nil {
				t.Fatal(err)
			}
			type answer struct {
				res viewsync.CallResult
				err error
			}
			done := make(chan answer, 1)
			go func() {
				res, err := hub.Call(ctx, "write", json.RawMessage(tc.arg))
				done <- answer{res, err}
			}()
			<-written
			if _, err := src.Apply(ctx, 0, viewsync.Put("a", []byte(`1`))); err != nil {
				t.Fatal(err)
			}
			<-src.waits // the handler waits at position 1
			select {
			case a := <-done:
				t.Fatalf("the call answered %+v, %v before the source applied its position", a.res, a.err)
			default:
			}
			if _, err := src.Apply(ctx, 0, viewsync.Put("b", []byte(`2`))); err != nil {
				t.Fatal(err)
			}
			a := <-done
			if a.err != nil {
				t.Fatal(a.err)
			}
			if fmt.Sprint(a.res.Versions) != fmt.Sprint(tc.want) {
				t.Errorf("versions %v, want %v", a.res.Versions, tc.want)
			}
			if string(a.res.Result) != mustJSON(t, tc.want) {
				t.Errorf("Call.Versions in the handler: %s, want %v", a.res.Result, tc.want)
			}
			col, _ := hub.Collection("products")
			if _, err := col.Get(ctx, "b"); err != nil {
				t.Errorf("the awaited write is not in the store: %v", err)
			}

			// A position already applied answers at once.
			if _, err := src.Apply(ctx, 1, viewsync.Put("o", []byte(`1`))); err != nil {
				t.Fatal(err)
			}
			res, err := hub.Call(ctx, "write", json.RawMessage(`["orders"]`))
			<-written
			if err != nil || fmt.Sprint(res.Versions) != "map[orders:1]" {
				t.Errorf("a position already applied: %+v, %v; want orders at 1", res, err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCallAwaitErrors: an unknown source, no source named with none or
// several, a position the source cannot read, a bad collection and a
// source that stops each fail with their own error; the call answers the
// code a transport would send.
func TestCallAwaitErrors(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, memstore.New(nil))
	var got error
	hub.HandleCall("await", func(ctx context.Context, call *viewsync.Call) (any, error) {
		var a struct{ Source, Pos, Coll string }
		json.Unmarshal(call.Arg, &a)
		var colls []string
		if a.Coll != "" {
			colls = append(colls, a.Coll)
		}
		got = call.Await(ctx, a.Source, a.Pos, colls...)
		return nil, got
	})
	call := func(arg string) error {
		_, err := hub.Call(ctx, "await", json.RawMessage(arg))
		return err
	}
	if err := call(`{"pos":"1"}`); !errors.Is(err, viewsync.ErrUnknownSource) || viewsync.ErrorCode(err) != protocol.CodeInternal {
		t.Errorf("no source at all: %v (%s), want ErrUnknownSource, internal", err, viewsync.ErrorCode(err))
	}
	src := newCounterSource(t, hub, "products")
	if err := hub.AddSource("a", src, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arg  string
		want error
		code protocol.Code
	}{
		{`{"source":"b","pos":"1"}`, viewsync.ErrUnknownSource, protocol.CodeInternal},
		{`{"pos":"x"}`, viewsync.ErrBadPosition, protocol.CodeInternal},
		{`{"pos":"0","coll":"Bad name"}`, viewsync.ErrInvalid, protocol.CodeBadRequest},
	} {
		if err := call(tc.arg); !errors.Is(err, tc.want) || viewsync.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v (%s), want %v, %s", tc.arg, err, viewsync.ErrorCode(err), tc.want, tc.code)
		}
	}
	if err := hub.AddSource("b", newCounterSource(t, hub, "orders"), nil); err != nil {
		t.Fatal(err)
	}
	if err := call(`{"pos":"0"}`); !errors.Is(err, viewsync.ErrUnknownSource) {
		t.Errorf("no source named among two: %v, want ErrUnknownSource", err)
	}
	if err := call(`{"source":"b","pos":"0"}`); err != nil {
		t.Errorf("position 0 of b: %v", err)
	}
	hub.RemoveSource("b", src) // not b's source: stays
	if err := call(`{"source":"b","pos":"0"}`); err != nil {
		t.Errorf("b after removing another source under its name: %v", err)
	}

	errc := make(chan error, 1)
	go func() { errc <- call(`{"source":"a","pos":"5"}`) }()
	<-src.waits
	src.Close()
	if err := <-errc; !errors.Is(err, viewsync.ErrClosed) || viewsync.ErrorCode(err) != protocol.CodeUnavailable {
		t.Errorf("a source stopping: %v (%s), want ErrClosed, unavailable", err, viewsync.ErrorCode(err))
	}
	hub.RemoveSource("a", src)
	if err := call(`{"source":"a","pos":"0"}`); !errors.Is(err, viewsync.ErrUnknownSource) {
		t.Errorf("a removed source: %v, want ErrUnknownSource", err)
	}
}

// TestCallAwaitTimeout: a position the source never reaches fails the
// call at the source's AwaitTimeout with 504 timeout and a message naming
// the source and the position; the caller's own context ending first is
// that context's error.
func TestCallAwaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := memstore.New(nil)
		defer st.Close()
		hub, err := viewsync.New(st)
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		src := newCounterSource(t, hub, "products")
		if err := hub.AddSource("counter", src, &viewsync.SourceOptions{AwaitTimeout: 3 * time.Second}); err != nil {
			t.Fatal(err)
		}
		hub.HandleCall("write", func(ctx context.Context, call *viewsync.Call) (any, error) {
			return nil, call.Await(ctx, "counter", "7")
		})
		start := time.Now()
		_, err = hub.Call(ctx, "write", nil)
		if took := time.Since(start); took != 3*time.Second {
			t.Errorf("the call failed after %v, want the timeout, 3s", took)
		}
		var ce *viewsync.CallError
		if !errors.Is(err, viewsync.ErrAwaitTimeout) || !errors.As(err, &ce) || viewsync.ErrorCode(err) != protocol.CodeTimeout {
			t.Fatalf("%v (%s), want ErrAwaitTimeout, a *CallError, timeout", err, viewsync.ErrorCode(err))
		}
		if want := "source counter did not reach position 7 within 3s; the write is done, and views show it once the source gets there"; ce.Message != want {
			t.Errorf("message %q, want %q", ce.Message, want)
		}

		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err = hub.Call(cctx, "write", nil)
		if errors.Is(err, viewsync.ErrAwaitTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the caller's deadline first: %v, want context.DeadlineExceeded", err)
		}
		if err := hub.AddSource("neg", src, &viewsync.SourceOptions{AwaitTimeout: -1}); !errors.Is(err, viewsync.ErrInvalid) {
			t.Errorf("a negative AwaitTimeout: %v, want ErrInvalid", err)
		}
	})
}
