package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// model is the suite's own idea of a collection's state: its records by id,
// computed from commits known to have been applied.
type model map[string]protocol.Record

// apply applies c's ops in order. It fails, leaving m partly changed, on a
// delete of a missing record.
func (m model) apply(c protocol.Commit) error {
	for i, op := range c.Ops {
		switch op.Op {
		case protocol.OpPut:
			m[op.ID] = protocol.Record{ID: op.ID, Value: slices.Clone(op.Value), Version: c.Version}
		case protocol.OpDelete:
			if _, ok := m[op.ID]; !ok {
				return fmt.Errorf("commit %d op %d deletes missing record %q", c.Version, i, op.ID)
			}
			delete(m, op.ID)
		default:
			return fmt.Errorf("commit %d op %d has unknown kind %q", c.Version, i, op.Op)
		}
	}
	return nil
}

// prev returns what Applied.Prev must be for ops applied to m: for each
// op, the value of its record just before it, after the ops before it,
// nil where the record did not exist. m is not changed.
func (m model) prev(ops []protocol.Op) []json.RawMessage {
	prev := make([]json.RawMessage, len(ops))
	after := make(map[string]json.RawMessage) // nil: deleted
	for i, op := range ops {
		v, ok := after[op.ID]
		if !ok {
			v = m[op.ID].Value
		}
		prev[i] = v
		if op.Op == protocol.OpDelete {
			after[op.ID] = nil
		} else {
			after[op.ID] = op.Value
		}
	}
	return prev
}

// version returns the version of record id, 0 if it does not exist.
func (m model) version(id string) uint64 { return m[id].Version }

// records returns the records sorted by id, as a snapshot lists them.
func (m model) records() []protocol.Record {
	recs := slices.Collect(maps.Values(m))
	slices.SortFunc(recs, func(a, b protocol.Record) int { return strings.Compare(a.ID, b.ID) })
	if recs == nil {
		recs = []protocol.Record{}
	}
	return recs
}

// history is a collection's commits from version 1 on and the model state
// after each: states[v] is the state at version v, states[0] is empty.
type history struct {
	commits []protocol.Commit
	states  []model
}

// newHistory returns the history of an empty collection.
func newHistory() *history { return &history{states: []model{{}}} }

// add appends the next commit, which must have the next version and apply
// cleanly.
func (h *history) add(c protocol.Commit) error {
	if want := uint64(len(h.commits)) + 1; c.Version != want {
		return fmt.Errorf("commit has version %d, want %d", c.Version, want)
	}
	next := maps.Clone(h.states[len(h.states)-1])
	if err := next.apply(c); err != nil {
		return err
	}
	// A copy, so the suite's history cannot change when a test
	// scribbles on what a store returned.
	h.commits = append(h.commits, c.Clone())
	h.states = append(h.states, next)
	return nil
}

// head returns the latest version.
func (h *history) head() uint64 { return uint64(len(h.commits)) }

// state returns the latest state. It must not be modified.
func (h *history) state() model { return h.states[len(h.states)-1] }

// deletedAfter returns the ids deleted by commits after version after.
func (h *history) deletedAfter(after uint64) map[string]bool {
	ids := make(map[string]bool)
	for _, c := range h.commits[min(after, h.head()):] {
		for _, op := range c.Ops {
			if op.Op == protocol.OpDelete {
				ids[op.ID] = true
			}
		}
	}
	return ids
}

// tracker applies commits to one collection through a fixture, checks each
// against the store's answer and keeps the history.
type tracker struct {
	f     *fixture
	coll  string
	epoch string
	*history
}

// track starts tracking coll, which must be empty at version 0.
func (f *fixture) track(coll string) *tracker {
	f.t.Helper()
	h := f.head(coll)
	if h.Version != 0 {
		f.t.Fatalf("Head(%s) = %+v, want version 0", coll, h)
	}
	return &tracker{f: f, coll: coll, epoch: h.Epoch, history: newHistory()}
}

// apply applies ops under ifs, requires success and checks the Applied.
func (tr *tracker) apply(ifs map[string]uint64, ops ...protocol.Op) store.Applied {
	tr.f.t.Helper()
	a := tr.f.apply(tr.coll, ifs, ops...)
	tr.checkApplied(a, ops)
	if err := tr.add(a.Commit); err != nil {
		tr.f.t.Fatalf("Apply(%s, %s): %v", tr.coll, opsString(ops), err)
	}
	return a
}

// put applies one commit of puts of the given id, value pairs.
func (tr *tracker) put(pairs ...string) store.Applied {
	tr.f.t.Helper()
	var ops []protocol.Op
	for i := 0; i+1 < len(pairs); i += 2 {
		ops = append(ops, put(pairs[i], pairs[i+1]))
	}
	return tr.apply(nil, ops...)
}

// del applies one commit deleting ids.
func (tr *tracker) del(ids ...string) store.Applied {
	tr.f.t.Helper()
	var ops []protocol.Op
	for _, id := range ids {
		ops = append(ops, del(id))
	}
	return tr.apply(nil, ops...)
}

// checkApplied checks a successful Apply's result against the ops given.
func (tr *tracker) checkApplied(a store.Applied, ops []protocol.Op) {
	tr.f.t.Helper()
	if a.Epoch != tr.epoch {
		tr.f.t.Fatalf("Apply(%s) epoch %q, want the collection's epoch %q", tr.coll, a.Epoch, tr.epoch)
	}
	if want := tr.head() + 1; a.Commit.Version != want {
		tr.f.t.Fatalf("Apply(%s) version %d, want %d", tr.coll, a.Commit.Version, want)
	}
	if d := diffOps(a.Commit.Ops, ops); d != "" {
		tr.f.t.Fatalf("Apply(%s) commit ops differ from those applied: %s", tr.coll, d)
	}
	if err := checkAt(a.Commit.At, tr.f.cfg); err != nil {
		tr.f.t.Fatalf("Apply(%s) commit %d: %v", tr.coll, a.Commit.Version, err)
	}
	if d := diffPrev(a.Prev, tr.state().prev(ops)); d != "" {
		tr.f.t.Fatalf("Apply(%s, %s) Prev: %s", tr.coll, opsString(ops), d)
	}
}

// checkHead checks Head against the history.
func (tr *tracker) checkHead() {
	tr.f.t.Helper()
	if h := tr.f.head(tr.coll); h.Epoch != tr.epoch || h.Version != tr.head() {
		tr.f.t.Fatalf("Head(%s) = %+v, want %s:%d", tr.coll, h, tr.epoch, tr.head())
	}
}

// checkSnapshot checks Snapshot and Get of every record against the model.
func (tr *tracker) checkSnapshot() {
	tr.f.t.Helper()
	s := tr.f.snapshot(tr.coll)
	if s.Epoch != tr.epoch || s.Version != tr.head() {
		tr.f.t.Fatalf("Snapshot(%s) at %s:%d, want %s:%d", tr.coll, s.Epoch, s.Version, tr.epoch, tr.head())
	}
	if s.Reset {
		tr.f.t.Fatalf("Snapshot(%s).Reset is set; that is the hub's to set", tr.coll)
	}
	if d := diffRecords(s.Records, tr.state().records()); d != "" {
		tr.f.t.Fatalf("Snapshot(%s) at %d: %s", tr.coll, s.Version, d)
	}
	for _, want := range tr.state() {
		got := tr.f.get(tr.coll, want.ID)
		if d := diffRecord(got, want); d != "" {
			tr.f.t.Fatalf("Get(%s, %q): %s", tr.coll, want.ID, d)
		}
	}
}

// checkChanges checks Changes(after, page), which must succeed, against
// the history: the commits after the cursor, cut at page.Commits, and
// before the commit that would take the sum of their CommitSize above
// page.Bytes — but never before the first.
func (tr *tracker) checkChanges(after uint64, page store.Page) {
	tr.f.t.Helper()
	ch := tr.f.changes(tr.coll, after, page)
	if ch.Epoch != tr.epoch || ch.Version != tr.head() {
		tr.f.t.Fatalf("Changes(%s, after %d, %+v) at %s:%d, want %s:%d",
			tr.coll, after, page, ch.Epoch, ch.Version, tr.epoch, tr.head())
	}
	want := tr.commits[min(after, tr.head()):]
	if page.Commits > 0 && len(want) > page.Commits {
		want = want[:page.Commits]
	}
	if page.Bytes > 0 {
		total := 0
		for i, c := range want {
			if total += protocol.CommitSize(c); i > 0 && total > page.Bytes {
				want = want[:i]
				break
			}
		}
	}
	if d := diffCommits(ch.Commits, want); d != "" {
		tr.f.t.Fatalf("Changes(%s, after %d, %+v): %s", tr.coll, after, page, d)
	}
}

// checkLog checks Changes from every cursor up to the head: the log must
// hold at least the last retain commits (all when retain <= 0), what it
// holds must be a contiguous suffix of the history, and cursors before it
// must get ErrCompacted. It returns the oldest cursor that works.
func (tr *tracker) checkLog(retain int) uint64 {
	tr.f.t.Helper()
	head := tr.head()
	var oldest uint64
	compacted := true
	for after := uint64(0); after <= head; after++ {
		_, err := tr.f.s.Changes(tr.f.ctx(), tr.coll, after, store.Page{})
		switch {
		case err == nil:
			if compacted {
				oldest, compacted = after, false
			}
			tr.checkChanges(after, store.Page{})
			tr.checkChanges(after, store.Page{Commits: 1})
			tr.checkChanges(after, store.Page{Commits: 3})
		case errors.Is(err, store.ErrCompacted):
			if !compacted {
				tr.f.t.Fatalf("Changes(%s, after %d): ErrCompacted, but after %d works: the log must be a contiguous suffix",
					tr.coll, after, oldest)
			}
			if retain <= 0 || head-after <= uint64(retain) {
				tr.f.t.Fatalf("Changes(%s, after %d) at head %d: ErrCompacted, but the log must keep the last %d commits (0: all)",
					tr.coll, after, head, retain)
			}
			if _, err := tr.f.s.Changes(tr.f.ctx(), tr.coll, after, store.Page{Commits: 1}); !errors.Is(err, store.ErrCompacted) {
				tr.f.t.Fatalf("Changes(%s, after %d, limit 1) = %v, want ErrCompacted as without a limit", tr.coll, after, err)
			}
		default:
			tr.f.t.Fatalf("Changes(%s, after %d): %v", tr.coll, after, err)
		}
	}
	for _, ahead := range []uint64{head + 1, head + 100} {
		ch := tr.f.changes(tr.coll, ahead, store.Page{})
		if len(ch.Commits) != 0 || ch.Version != head || ch.Epoch != tr.epoch {
			tr.f.t.Fatalf("Changes(%s, after %d) ahead of head %d = %s:%d with %d commits, want %s:%d with none",
				tr.coll, ahead, head, ch.Epoch, ch.Version, len(ch.Commits), tr.epoch, head)
		}
	}
	return oldest
}

// checkCatchUp checks CatchUp(after), which must succeed, against the
// history.
func (tr *tracker) checkCatchUp(after uint64) {
	tr.f.t.Helper()
	cu := tr.f.catchUp(tr.coll, after)
	if cu.Epoch != tr.epoch || cu.Version != tr.head() {
		tr.f.t.Fatalf("CatchUp(%s, after %d) at %s:%d, want %s:%d", tr.coll, after, cu.Epoch, cu.Version, tr.epoch, tr.head())
	}
	if err := checkCatchUp(cu, after, tr.history); err != nil {
		tr.f.t.Fatalf("CatchUp(%s, after %d) at %d: %v", tr.coll, after, cu.Version, err)
	}
}

// checkCatchUps checks CatchUp from every cursor from `from` to the head.
func (tr *tracker) checkCatchUps(from uint64) {
	tr.f.t.Helper()
	for after := from; after <= tr.head(); after++ {
		tr.checkCatchUp(after)
	}
}

// checkAll checks the head, the snapshot and the whole log against the
// history, and the catch-up from each cursor of afters.
func (tr *tracker) checkAll(afters ...uint64) {
	tr.f.t.Helper()
	tr.checkHead()
	tr.checkSnapshot()
	tr.checkLog(0)
	for _, after := range afters {
		tr.checkCatchUp(after)
	}
}

// checkCatchUp checks a catch-up from after, read at cu.Version, against h:
//   - Records are exactly the records at cu.Version whose version is
//     greater than after, each once, in version order;
//   - Deleted names each id once; it holds every id present at after and
//     absent at cu.Version, and only ids absent at cu.Version that some
//     commit after the cursor deleted (an id created and deleted after the
//     cursor may be listed or not);
//   - so applying it to the state at after gives the state at cu.Version.
func checkCatchUp(cu protocol.CatchUp, after uint64, h *history) error {
	if cu.Version > h.head() {
		return fmt.Errorf("read at version %d, beyond the history's %d", cu.Version, h.head())
	}
	if cu.Records == nil || cu.Deleted == nil {
		return fmt.Errorf("nil Records or Deleted, want non-nil slices")
	}
	at, now := h.states[min(after, cu.Version)], h.states[cu.Version]

	for i := 1; i < len(cu.Records); i++ {
		if cu.Records[i].Version < cu.Records[i-1].Version {
			return fmt.Errorf("records not in version order: %q at %d after %q at %d",
				cu.Records[i].ID, cu.Records[i].Version, cu.Records[i-1].ID, cu.Records[i-1].Version)
		}
	}
	var want []protocol.Record
	for _, r := range now.records() {
		if r.Version > after {
			want = append(want, r)
		}
	}
	got := slices.Clone(cu.Records)
	slices.SortFunc(got, func(a, b protocol.Record) int { return strings.Compare(a.ID, b.ID) })
	if d := diffRecords(got, want); d != "" {
		return fmt.Errorf("records (sorted by id here) are not those newer than the cursor: %s", d)
	}

	deletedAfter := h.deletedAfter(after)
	seen := make(map[string]bool, len(cu.Deleted))
	for _, id := range cu.Deleted {
		switch {
		case seen[id]:
			return fmt.Errorf("deleted lists %q twice", id)
		case now[id].Version != 0:
			return fmt.Errorf("deleted lists %q, which exists at version %d", id, cu.Version)
		case !deletedAfter[id]:
			return fmt.Errorf("deleted lists %q, which no commit after %d deleted", id, after)
		}
		seen[id] = true
	}
	for id := range at {
		if _, ok := now[id]; !ok && !seen[id] {
			return fmt.Errorf("deleted misses %q, which existed at %d and not at %d", id, after, cu.Version)
		}
	}

	replayed := maps.Clone(at)
	for _, id := range cu.Deleted {
		delete(replayed, id)
	}
	for _, r := range cu.Records {
		replayed[r.ID] = r
	}
	if d := diffRecords(replayed.records(), now.records()); d != "" {
		return fmt.Errorf("state at %d plus the catch-up is not the state at %d: %s", after, cu.Version, d)
	}
	return nil
}

// checkAt checks a commit time: set, in UTC and, with an injected clock,
// the clock's time to the millisecond.
func checkAt(at time.Time, cfg store.Config) error {
	if at.IsZero() {
		return fmt.Errorf("commit time is not set")
	}
	if at.Location() != time.UTC {
		return fmt.Errorf("commit time %v is not in UTC", at)
	}
	if cfg.Now == nil {
		return nil
	}
	now := cfg.Now()
	if at.After(now) || now.Sub(at) >= time.Millisecond {
		return fmt.Errorf("commit time %v, want the clock's %v (to the millisecond)", at, now.UTC())
	}
	return nil
}

// diffSnapshot describes how two snapshots differ, "" if they do not.
func diffSnapshot(got, want protocol.Snapshot) string {
	if got.Epoch != want.Epoch || got.Version != want.Version {
		return fmt.Sprintf("at %s:%d, want %s:%d", got.Epoch, got.Version, want.Epoch, want.Version)
	}
	return diffRecords(got.Records, want.Records)
}

// diffRecords describes how two record lists differ, "" if they do not.
func diffRecords(got, want []protocol.Record) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d records, want %d: missing %s", len(got), len(want), recordString(want[i]))
		case i >= len(want):
			return fmt.Sprintf("%d records, want %d: extra %s", len(got), len(want), recordString(got[i]))
		}
		if d := diffRecord(got[i], want[i]); d != "" {
			return fmt.Sprintf("record %d: %s", i, d)
		}
	}
	return ""
}

// diffRecord describes how two records differ, "" if they do not.
func diffRecord(got, want protocol.Record) string {
	if got.ID != want.ID || got.Version != want.Version || !bytes.Equal(got.Value, want.Value) {
		return fmt.Sprintf("got %s, want %s", recordString(got), recordString(want))
	}
	return ""
}

// diffCommits describes how two commit lists differ, "" if they do not.
// Times must be equal instants.
func diffCommits(got, want []protocol.Commit) string {
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			return fmt.Sprintf("%d commits, want %d: missing version %d", len(got), len(want), want[i].Version)
		case i >= len(want):
			return fmt.Sprintf("%d commits, want %d: extra version %d", len(got), len(want), got[i].Version)
		}
		g, w := got[i], want[i]
		if g.Version != w.Version {
			return fmt.Sprintf("commit %d has version %d, want %d", i, g.Version, w.Version)
		}
		if !g.At.Equal(w.At) {
			return fmt.Sprintf("commit %d at %v, want %v", g.Version, g.At, w.At)
		}
		if d := diffOps(g.Ops, w.Ops); d != "" {
			return fmt.Sprintf("commit %d: %s", g.Version, d)
		}
	}
	return ""
}

// diffOps describes how two op lists differ, "" if they do not. A delete's
// value may be nil or empty.
func diffOps(got, want []protocol.Op) string {
	if len(got) != len(want) {
		return fmt.Sprintf("ops %s, want %s", opsString(got), opsString(want))
	}
	for i := range got {
		if got[i].Op != want[i].Op || got[i].ID != want[i].ID || !bytes.Equal(got[i].Value, want[i].Value) {
			return fmt.Sprintf("ops %s, want %s", opsString(got), opsString(want))
		}
	}
	return ""
}

// diffPrev describes how two lists of previous values (Applied.Prev,
// Event.Prev) differ, "" if they do not. A nil value (no record) differs
// from every other, an empty one included.
func diffPrev(got, want []json.RawMessage) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d values, want %d (one per op)", len(got), len(want))
	}
	for i := range got {
		if (got[i] == nil) != (want[i] == nil) || !bytes.Equal(got[i], want[i]) {
			return fmt.Sprintf("op %d: got %s, want %s", i, prevString(got[i]), prevString(want[i]))
		}
	}
	return ""
}

// prevString shows a previous value in failure messages.
func prevString(v json.RawMessage) string {
	if v == nil {
		return "nil (no record)"
	}
	return shorten(v)
}

// diffIDSets describes how two id lists differ as sets, "" if they do not.
func diffIDSets(got, want []string) string {
	g, w := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		return fmt.Sprintf("%q, want %q", g, w)
	}
	return ""
}

// recordString formats a record for failure messages.
func recordString(r protocol.Record) string {
	return fmt.Sprintf("{%q v%d %s}", r.ID, r.Version, shorten(r.Value))
}

// opsString formats ops for failure messages.
func opsString(ops []protocol.Op) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, op := range ops {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s %q", op.Op, op.ID)
		if len(op.Value) > 0 {
			b.WriteString("=" + shorten(op.Value))
		}
	}
	b.WriteByte(']')
	return b.String()
}

// shorten keeps long values readable in failure messages.
func shorten(v []byte) string {
	if len(v) > 60 {
		return fmt.Sprintf("%s…(%d bytes)", v[:50], len(v))
	}
	return string(v)
}
