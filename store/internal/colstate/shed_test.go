package colstate

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// commitN is commit v of the tests: one put of a 200-byte value, in fresh
// memory as a decoded log entry would be.
func commitN(v uint64) protocol.Commit {
	return protocol.Commit{
		Version: v,
		At:      time.Unix(int64(v), 0).UTC(),
		Ops:     []protocol.Op{{Op: protocol.OpPut, ID: fmt.Sprintf("r%02d", v%100), Value: fmt.Appendf(nil, `"%0198d"`, v)}},
	}
}

// TestShed: Shed keeps the ops of the newest log entries up to its bound
// and only those, through appends and trims; Changes returns the shed
// ones without ops, the others whole, paged by the entries' sizes
// either way; Entry finds each retained entry.
func TestShed(t *testing.T) {
	s := New("e")
	size := protocol.CommitSize(commitN(1))
	const keep = 10
	for v := uint64(1); v <= 1000; v++ {
		s.Apply(commitN(v), 100+v)
		s.TrimLog(300, 50)
		s.Shed(keep * size)
		whole := 0
		for i, e := range s.Log() {
			if e.Commit.Ops != nil {
				whole++
			} else if whole > 0 {
				t.Fatalf("at %d: entry %d shed after a whole one", v, i)
			}
		}
		if want := min(int(v), keep); whole != want || s.LogBytes() != want*size {
			t.Fatalf("at %d: %d entries whole, %d bytes; want %d, %d bytes", v, whole, s.LogBytes(), want, want*size)
		}
	}
	floor := s.LogFloor()
	ch, err := s.Changes(floor, store.Page{Bytes: 25 * size})
	if err != nil || len(ch.Commits) != 25 {
		t.Fatalf("Changes after %d: %d commits, %v; want a page of 25", floor, len(ch.Commits), err)
	}
	for _, cm := range ch.Commits {
		if cm.Ops != nil {
			t.Fatalf("commit %d of the oldest comes with ops", cm.Version)
		}
	}
	ch, err = s.Changes(1000-keep, store.Page{})
	if err != nil || len(ch.Commits) != keep {
		t.Fatalf("Changes of the newest: %d commits, %v", len(ch.Commits), err)
	}
	for _, cm := range ch.Commits {
		if want := commitN(cm.Version); len(cm.Ops) != 1 || string(cm.Ops[0].Value) != string(want.Ops[0].Value) {
			t.Fatalf("commit %d of the newest: ops %v", cm.Version, cm.Ops)
		}
	}
	for _, v := range []uint64{floor, floor + 1, 1000, 1001} {
		e, ok := s.Entry(v)
		if want := v > floor && v <= 1000; ok != want || ok && (e.Commit.Version != v || e.Seq != 100+v || e.Size != size) {
			t.Fatalf("Entry(%d) = %+v, %v", v, e, ok)
		}
	}
}

// BenchmarkShed measures the memory a state's retained log takes, per
// commit (heap-B/commit: the heap once the state holds 20,000 commits of
// one 200-byte put, less before), with every commit's ops kept and with
// those of the newest 64 KiB only, as natskv keeps them by default.
func BenchmarkShed(b *testing.B) {
	const commits = 20_000
	for _, keep := range []int{-1, 64 << 10} {
		name := "keep=all"
		if keep > 0 {
			name = "keep=64KiB"
		}
		b.Run(name, func(b *testing.B) {
			var perCommit float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := New("e")
				for v := uint64(1); v <= commits; v++ {
					s.Apply(commitN(v), v)
					if keep > 0 {
						s.Shed(keep)
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				perCommit = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / commits
				runtime.KeepAlive(&s)
			}
			b.ReportMetric(perCommit, "heap-B/commit")
		})
	}
}
