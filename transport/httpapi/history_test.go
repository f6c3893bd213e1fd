package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// putSized writes n commits to collection c, commit i putting a value of
// sizes[i%len(sizes)] bytes.
func (s *testServer) putSized(t *testing.T, n int, sizes ...int) {
	t.Helper()
	for i := range n {
		v := fmt.Sprintf("%q", strings.Repeat("v", sizes[i%len(sizes)]))
		s.put("c", fmt.Sprintf("r%d", i%7), v)
	}
}

// TestChangesPagesBoundInBytes: pages of large commits stop at the byte
// bound, at an aligned boundary, so that clients at different cursors
// meet on the same pages; such a page ends before the head and is
// immutable, and walking page by page returns every commit once, in
// order.
func TestChangesPagesBoundInBytes(t *testing.T) {
	const pageBytes = 64 << 10
	s := newTestServer(t, &httpapi.Options{PageSize: 100, PageBytes: pageBytes})
	s.putSized(t, 300, 10<<10, 100, 3<<10, 20<<10)
	epoch := s.head("c").Epoch

	var walks [][]uint64
	for _, start := range []uint64{0, 3, 17, 50, 99} {
		var ends []uint64
		after := start
		for after < 300 {
			b, r := s.changes(t, fmt.Sprintf("after=%d&epoch=%s", after, epoch))
			if len(b.Commits) == 0 {
				t.Fatalf("after=%d: no commits before the head: %s", after, r.Body)
			}
			size := 0
			for i, c := range b.Commits {
				if c.Version != after+uint64(i)+1 {
					t.Fatalf("after=%d: commit %d has version %d", after, i, c.Version)
				}
				size += protocol.CommitSize(c)
			}
			last := b.Commits[len(b.Commits)-1].Version
			if len(b.Commits) > 1 && size > pageBytes {
				t.Fatalf("after=%d: page of %d commits is %d bytes, over the bound of %d", after, len(b.Commits), size, pageBytes)
			}
			if last < 300 {
				if cc := r.Header.Get("Cache-Control"); cc != cacheImmutable {
					t.Fatalf("after=%d: page ending at %d before the head has Cache-Control %q", after, last, cc)
				}
				if b.Version != last {
					t.Fatalf("after=%d: immutable page says version %d, want its end %d", after, b.Version, last)
				}
			}
			ends = append(ends, last)
			after = last
		}
		walks = append(walks, ends)
	}
	// Readers that started at five cursors walk the same pages from
	// version 150 on: they meet on shared boundaries.
	from := func(ends []uint64) []uint64 {
		for i, e := range ends {
			if e >= 150 {
				return ends[i:]
			}
		}
		return nil
	}
	for i, w := range walks[1:] {
		if a, b := from(walks[0]), from(w); fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("readers from cursors 0 and %d walk different pages after 150:\n%v\n%v", []int{3, 17, 50, 99}[i], a, b)
		}
	}
}

// TestChangesLargePageStreamed: a page larger than a write chunk arrives
// whole and equal to the log.
func TestChangesLargePageStreamed(t *testing.T) {
	s := newTestServer(t, &httpapi.Options{PageSize: 1000, PageBytes: 8 << 20})
	s.putSized(t, 40, 30<<10)
	b, r := s.changes(t, "after=0")
	if len(b.Commits) != 40 || r.Header.Get("Content-Length") != "" {
		t.Fatalf("got %d commits (Content-Length %q), want all 40, streamed", len(b.Commits), r.Header.Get("Content-Length"))
	}
	for i, c := range b.Commits {
		if c.Version != uint64(i+1) || len(c.Ops) != 1 || len(c.Ops[0].Value) != 30<<10+2 {
			t.Fatalf("commit %d: version %d, %d ops", i, c.Version, len(c.Ops))
		}
	}
}

// TestHistoryMemoryBusy: while the history memory bound is taken, a read of
// history waits and then gets 503 unavailable with Retry-After, and reads
// succeed again once the memory is free; the version poll, which reads no
// history, is never held back.
func TestHistoryMemoryBusy(t *testing.T) {
	mem := limit.NewMemory(1 << 20)
	s := newTestServer(t, &httpapi.Options{PageBytes: 1 << 20, Memory: mem, MemoryWait: 50e6})
	s.putSized(t, 3, 100)
	hold, err := mem.Reserve(t.Context(), 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/collections/c/changes?after=0", "/v1/collections/c"} {
		r := s.get(path)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), `"code":"unavailable"`) {
			t.Fatalf("GET %s with the memory taken: %d %q %s", path, r.Status, r.Header.Get("Retry-After"), r.Body)
		}
	}
	if r := s.get("/v1/collections/c/version"); r.Status != http.StatusOK {
		t.Fatalf("version poll with the memory taken: %d %s", r.Status, r.Body)
	}
	hold.Release()
	for _, path := range []string{"/v1/collections/c/changes?after=0", "/v1/collections/c"} {
		if r := s.get(path); r.Status != http.StatusOK {
			t.Fatalf("GET %s once memory is free: %d %s", path, r.Status, r.Body)
		}
	}
	if u := mem.Used(); u != 0 {
		t.Fatalf("%d bytes still held after the answers", u)
	}
}

// TestHistoryMemoryConcurrent: many concurrent history reads under a
// small bound all succeed (they queue), and leave the bound as they found
// it.
func TestHistoryMemoryConcurrent(t *testing.T) {
	mem := limit.NewMemory(256 << 10)
	s := newTestServer(t, &httpapi.Options{PageSize: 100, PageBytes: 64 << 10, Memory: mem})
	s.putSized(t, 200, 5<<10)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/v1/collections/c/changes?after=%d", i*10)
			if i%4 == 3 {
				path = "/v1/collections/c"
			}
			if r := s.get(path); r.Status != http.StatusOK {
				t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if h, err := mem.Reserve(ctx, 256<<10, 256<<10); err != nil || h.Bytes() != 256<<10 {
		t.Fatalf("the whole bound is not free after the reads: %v", err)
	}
}
