package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// positionTests check store.Positions: a source position stored with the
// commit or drop that carries it, atomically. A store that does not
// implement store.Positions has nothing to keep, and passes them as they
// are.
func positionTests() []test {
	return []test{
		{name: "NoneUntilGiven", run: testPositionNone},
		{name: "StoredWithCommit", run: testPositionWithCommit},
		{name: "FailedCommitKeepsPosition", run: testPositionFailedCommit},
		{name: "DropSetsOrClears", run: testPositionDrop},
		{name: "PerCollection", run: testPositionPerCollection},
		{name: "Copied", run: testPositionCopied},
		{name: "SurvivesReopen", run: testPositionReopen},
		{name: "ConcurrentWriters", run: testPositionConcurrent},
	}
}

// positions returns the fixture's store as a store.Positions, or nil.
func (f *fixture) positions() store.Positions {
	p, _ := f.s.(store.Positions)
	return p
}

// position reads a collection's position.
func (f *fixture) position(p store.Positions, coll string) []byte {
	f.t.Helper()
	pos, err := p.Position(f.ctx(), coll)
	if err != nil {
		f.t.Fatalf("Position(%s): %v", coll, err)
	}
	return pos
}

// requirePosition checks a collection's position.
func (f *fixture) requirePosition(p store.Positions, coll string, want []byte) {
	f.t.Helper()
	if got := f.position(p, coll); !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		f.t.Fatalf("Position(%s) = %q, want %q", coll, got, want)
	}
}

// applyAt applies ops with a position.
func (f *fixture) applyAt(p store.Positions, coll string, pos []byte, ops ...protocol.Op) store.Applied {
	f.t.Helper()
	a, err := p.ApplyAt(f.ctx(), coll, ops, nil, pos)
	if err != nil {
		f.t.Fatalf("ApplyAt(%s): %v", coll, err)
	}
	return a
}

func testPositionNone(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	f.requirePosition(p, "c", nil)
	f.apply("c", nil, put("a", "1"))
	f.requirePosition(p, "c", nil)
}

func testPositionWithCommit(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	a := f.applyAt(p, "c", []byte("lsn-1"), put("a", "1"))
	if a.Commit.Version != 1 {
		t.Fatalf("ApplyAt: version %d, want 1", a.Commit.Version)
	}
	f.requirePosition(p, "c", []byte("lsn-1"))
	// Apply and a nil position leave it as it is.
	f.apply("c", nil, put("b", "2"))
	f.applyAt(p, "c", nil, put("b", "3"))
	f.requirePosition(p, "c", []byte("lsn-1"))
	f.applyAt(p, "c", []byte("lsn-2"), del("a"))
	f.requirePosition(p, "c", []byte("lsn-2"))
	if hd := f.head("c"); hd.Version != 4 {
		t.Fatalf("Head = %+v, want version 4", hd)
	}
	if r := f.get("c", "b"); string(r.Value) != "3" || r.Version != 3 {
		t.Fatalf("Get(b) = %+v, want 3 at version 3", r)
	}
}

func testPositionFailedCommit(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	f.applyAt(p, "c", []byte("lsn-1"), put("a", "1"))
	if _, err := p.ApplyAt(f.ctx(), "c", []protocol.Op{put("b", "1")}, map[string]uint64{"a": 7}, []byte("lsn-2")); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("ApplyAt with a failing precondition: %v, want ErrPrecondition", err)
	}
	if _, err := p.ApplyAt(f.ctx(), "c", []protocol.Op{del("missing")}, nil, []byte("lsn-3")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ApplyAt deleting a missing record: %v, want ErrNotFound", err)
	}
	if _, err := p.ApplyAt(f.ctx(), "c", nil, nil, []byte("lsn-4")); !errors.Is(err, store.ErrEmptyCommit) {
		t.Fatalf("ApplyAt without ops: %v, want ErrEmptyCommit", err)
	}
	f.requirePosition(p, "c", []byte("lsn-1"))
	if hd := f.head("c"); hd.Version != 1 {
		t.Fatalf("Head = %+v after failed commits, want version 1", hd)
	}
}

func testPositionDrop(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	f.applyAt(p, "c", []byte("lsn-1"), put("a", "1"))
	old := f.head("c")
	hd, err := p.DropAt(f.ctx(), "c", []byte("lsn-9"))
	if err != nil {
		t.Fatalf("DropAt: %v", err)
	}
	requireNewEpoch(t, "DropAt", hd, old.Epoch)
	f.requireEmpty("c", hd.Epoch, "a")
	f.requirePosition(p, "c", []byte("lsn-9"))
	// A drop of a collection never written keeps its position too.
	if _, err := p.DropAt(f.ctx(), "fresh", []byte("lsn-5")); err != nil {
		t.Fatalf("DropAt(fresh): %v", err)
	}
	f.requirePosition(p, "fresh", []byte("lsn-5"))
	// Drop clears it, and so does DropAt with nil.
	f.drop("c")
	f.requirePosition(p, "c", nil)
	if _, err := p.DropAt(f.ctx(), "fresh", nil); err != nil {
		t.Fatalf("DropAt(fresh, nil): %v", err)
	}
	f.requirePosition(p, "fresh", nil)
}

func testPositionPerCollection(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	f.applyAt(p, "a", []byte("A"), put("x", "1"))
	f.applyAt(p, "b", []byte("B"), put("x", "1"))
	f.requirePosition(p, "a", []byte("A"))
	f.requirePosition(p, "b", []byte("B"))
	f.requirePosition(p, "c", nil)
}

func testPositionCopied(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	pos := []byte("lsn-1")
	f.applyAt(p, "c", pos, put("a", "1"))
	pos[0] = 'X'
	got := f.position(p, "c")
	if string(got) != "lsn-1" {
		t.Fatalf("Position = %q after the caller changed its slice, want lsn-1", got)
	}
	got[0] = 'Y'
	f.requirePosition(p, "c", []byte("lsn-1"))
}

func testPositionReopen(t *testing.T, f *fixture) {
	if f.positions() == nil || !f.h.Persistent {
		return
	}
	f.applyAt(f.positions(), "c", []byte("lsn-1"), put("a", "1"))
	if _, err := f.positions().DropAt(f.ctx(), "d", []byte("lsn-2")); err != nil {
		t.Fatalf("DropAt: %v", err)
	}
	f.reopen()
	f.requirePosition(f.positions(), "c", []byte("lsn-1"))
	f.requirePosition(f.positions(), "d", []byte("lsn-2"))
}

// testPositionConcurrent: writers giving increasing positions, each with
// its commit; the position read after them is the last commit's.
func testPositionConcurrent(t *testing.T, f *fixture) {
	p := f.positions()
	if p == nil {
		return
	}
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			coll := string(rune('a' + w))
			for i := range each {
				pos := []byte{byte(w), byte(i)}
				if _, err := p.ApplyAt(f.ctx(), coll, []protocol.Op{put("r", "1")}, nil, pos); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("ApplyAt: %v", err)
	}
	for w := range writers {
		f.requirePosition(p, string(rune('a'+w)), []byte{byte(w), each - 1})
	}
}
