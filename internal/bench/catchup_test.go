package bench

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/viewsync/viewsync/protocol"
)

func TestChangesReaderApply(t *testing.T) {
	r := &changesReader{cur: protocol.Cursor{Epoch: "E", Version: 0}, state: map[string]uint64{}}
	put := func(id string) protocol.Op {
		return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(`1`)}
	}
	page := &changesBody{Epoch: "E", Version: 9, Commits: []protocol.Commit{
		{Version: 1, Ops: []protocol.Op{put("a"), put("b")}},
		{Version: 2, Ops: []protocol.Op{{Op: protocol.OpDelete, ID: "a"}}},
		{Version: 3, Ops: []protocol.Op{put("c")}},
	}}
	if done, err := r.apply(page, 100, "public, max-age=31536000, immutable", 0); done || err != nil {
		t.Fatalf("page: %v, %v", done, err)
	}
	if want := map[string]uint64{"b": 1, "c": 3}; !mapsEqual(r.state, want) || r.cur.Version != 3 {
		t.Errorf("after a page: %v at %s, want %v at 3", r.state, r.cur, want)
	}
	// A compacted catch-up: records written and ids deleted since.
	cu := &changesBody{Epoch: "E", Version: 8, Compacted: true,
		Records: []protocol.Record{{ID: "d", Version: 7}, {ID: "b", Version: 8}}, Deleted: []string{"c"}}
	if done, err := r.apply(cu, 50, "no-store", 0); done || err != nil {
		t.Fatalf("catch-up: %v, %v", done, err)
	}
	if want := map[string]uint64{"b": 8, "d": 7}; !mapsEqual(r.state, want) || r.cur.Version != 8 {
		t.Errorf("after a catch-up: %v at %s, want %v at 8", r.state, r.cur, want)
	}
	if done, err := r.apply(&changesBody{Epoch: "E", Version: 8, Commits: []protocol.Commit{}}, 40, "no-store", 0); !done || err != nil {
		t.Errorf("empty page: done %v, %v", done, err)
	}
	got := r.result(0)
	want := catchupRead{From: 0, To: 8, Requests: 3, Pages: 1, Immutable: 1, Bytes: 190, Commits: 3,
		CatchUp: &catchupFigures{Covers: 5, Records: 2, Deleted: 1, Bytes: 50}}
	if got.CatchUp == nil || *got.CatchUp != *want.CatchUp {
		t.Fatalf("catch-up figures %+v, want %+v", got.CatchUp, want.CatchUp)
	}
	got.CatchUp = want.CatchUp
	if got != want {
		t.Errorf("result %+v, want %+v", got, want)
	}

	// A gap in the commits, or another epoch, is an error; a reset
	// replaces the copy.
	if _, err := r.apply(&changesBody{Epoch: "E", Commits: []protocol.Commit{{Version: 10}}}, 1, "", 0); err == nil {
		t.Error("a gap: no error")
	}
	if _, err := r.apply(&changesBody{Epoch: "F", Commits: []protocol.Commit{{Version: 9}}}, 1, "", 0); err == nil {
		t.Error("another epoch: no error")
	}
	if _, err := r.apply(&changesBody{Epoch: "F", Version: 4, Reset: true, Records: []protocol.Record{{ID: "z", Version: 4}}}, 1, "", 0); err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{"z": 4}; !mapsEqual(r.state, want) || r.cur != (protocol.Cursor{Epoch: "F", Version: 4}) || r.read.Resets != 1 {
		t.Errorf("after a reset: %v at %s", r.state, r.cur)
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestVerifyCopy(t *testing.T) {
	snap := protocol.Snapshot{Epoch: "E", Version: 5, Records: []protocol.Record{{ID: "a", Version: 2}, {ID: "b", Version: 5}}}
	cur := protocol.Cursor{Epoch: "E", Version: 5}
	if n, err := verifyCopy(map[string]uint64{"a": 2, "b": 5}, cur, snap); n != 2 || err != nil {
		t.Errorf("matching copy: %d, %v", n, err)
	}
	for _, bad := range []map[string]uint64{{"a": 2, "b": 4}, {"a": 2}, {"a": 2, "b": 5, "c": 1}} {
		if _, err := verifyCopy(bad, cur, snap); err == nil {
			t.Errorf("copy %v: no error", bad)
		}
	}
	if _, err := verifyCopy(map[string]uint64{"a": 2, "b": 5}, protocol.Cursor{Epoch: "E", Version: 4}, snap); err == nil {
		t.Error("copy at another version: no error")
	}
}

// TestBenchCatchup makes a few hundred commits on an in-process server
// and reads them back in aligned pages.
func TestBenchCatchup(t *testing.T) {
	base := startBenchServer(t)
	r, stderr := runJSON[catchupReport](t, "catchup", "--url", base, "--behind", "450", "--page-size", "100",
		"--writers", "8", "--records", "50")
	rd := r.Read
	if r.Prepared != 450 || r.PrepareErrors != 0 || r.Verified != 50 || r.VerifyError != "" {
		t.Errorf("report %+v", r)
	}
	// Pages of 100 up to 400, one of 50, then the empty one.
	if rd.From != 0 || rd.To != 450 || rd.Commits != 450 || rd.Pages != 5 || rd.Immutable != 4 || rd.Requests != 6 || rd.CatchUp != nil || rd.Bytes <= 0 || rd.CommitsPerSec <= 0 {
		t.Errorf("read %+v", rd)
	}
	if !strings.Contains(stderr, "making 450 commits") || !strings.Contains(stderr, "reading 450 commits") {
		t.Errorf("stderr: %s", stderr)
	}
	// Again on the same collection, as a table: the client starts at the
	// head it found, so it reads only the new commits and checks nothing.
	code, stdout, _ := runBench(t, "catchup", "--url", base, "--behind", "20", "--writers", "2", "--records", "50")
	if code != 0 || !strings.Contains(stdout, "version 450 to 470") || !strings.Contains(stdout, "not checked") {
		t.Errorf("second run: exit %d\n%s", code, stdout)
	}
}
