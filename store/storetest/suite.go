package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Run runs the conformance suite against the store that newHarness opens.
// Every subtest calls newHarness with its own *testing.T for a fresh
// harness, so no subtest sees another's data; a harness may tie its
// location to that test (t.TempDir) and its cleanup to t.Cleanup. The
// subtests run one after another.
//
// Beyond what the store.Store documentation says, the suite holds stores to
// these rules, which the hub and the transports rely on:
//   - Snapshot.Records, Changes.Commits, CatchUp.Records and CatchUp.Deleted
//     are never nil (they encode as [], not null), and CatchUp.Compacted is
//     true.
//   - A collection keeps its epoch when it is first written: the epoch Head
//     reports for a never-written collection is the one its first commit
//     gets (only Drop, or reopening an ephemeral store, starts a new one).
//   - Commit times are UTC, taken from Config.Now, and kept to at least the
//     millisecond; Changes returns them exactly as Apply did.
//   - The log is trimmed: once a collection has had five times
//     Config.RetainCommits commits, the first is no longer in the log.
//   - Tombstones older than Config.RetainTombstones are forgotten by the
//     time the next commit to their collection is acknowledged, after which
//     a catch-up from before them returns ErrHistoryGone.
//   - A context that is already done fails every call with an error
//     wrapping ctx.Err(), and the call changes nothing.
//   - Values come back byte for byte as written, and neither what a caller
//     passes to Apply nor what it gets back shares memory with the store.
//     Applied.Prev shares none with the ops passed to Apply either.
//   - A store.Watcher reports Event.Prev (not nil) for the commits it
//     follows as they are made, its own and other handles'.
//   - A store.Positions keeps each collection's source position with the
//     commit or drop that carries it, and only then; Apply leaves it,
//     Drop clears it.
//   - A store.Keys records an idempotency key with its commit and only
//     then, finds it before any other check, forgets it after
//     Config.KeyTTL, keeps about Config.MaxKeys at most and forgets a
//     collection's on Drop.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Helper()
	for _, g := range groups() {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					h := newHarness(t)
					if h.Open == nil {
						t.Fatal("storetest: Harness.Open is nil")
					}
					tc.run(t, open(t, h, tc))
				})
			}
		})
	}
}

// group is a named set of subtests.
type group struct {
	name  string
	tests []test
}

// test is one subtest. It gets a fresh harness's store, opened with cfg
// (zero: the defaults).
type test struct {
	name string
	run  func(t *testing.T, f *fixture)
	cfg  store.Config
	// clocked runs the store on the fixture's clock (f.clk): it sets
	// cfg.Now.
	clocked bool
}

// groups lists the suite's subtests, one group per concern.
func groups() []group {
	return []group{
		// Collections that have never been written: every valid name
		// exists, empty, at version 0, with a stable epoch.
		{"Empty", []test{
			{name: "HeadAtVersionZero", run: testEmptyHead},
			{name: "EpochStable", run: testEmptyEpochStable},
			{name: "GetNotFound", run: testEmptyGet},
			{name: "SnapshotEmpty", run: testEmptySnapshot},
			{name: "ChangesEmpty", run: testEmptyChanges},
			{name: "CatchUpEmpty", run: testEmptyCatchUp},
			{name: "FirstCommitKeepsEpoch", run: testFirstCommitKeepsEpoch},
		}},
		// Commits: versions, times, what reads see after them, atomicity
		// and the order of ops within one.
		{"Apply", []test{
			{name: "VersionsContiguous", run: testVersionsContiguous},
			{name: "CommitTime", run: testCommitTime, clocked: true},
			{name: "CollectionsIndependent", run: testCollectionsIndependent},
			{name: "RecordVersionIsCommitVersion", run: testRecordVersion},
			{name: "ValuesRoundTrip", run: testValuesRoundTrip},
			{name: "SnapshotSortedByID", run: testSnapshotSorted},
			{name: "ChangesAfterAndLimit", run: testChangesAfterAndLimit},
			{name: "ChangesByteBound", run: testChangesByteBound},
			{name: "MultiOpCommitAtomic", run: testMultiOpAtomic},
			{name: "FailedCommitChangesNothing", run: testFailedCommitChangesNothing},
			{name: "OpsApplyInOrder", run: testOpsInOrder},
			{name: "EmptyCommit", run: testEmptyCommit},
			{name: "DeleteMissing", run: testDeleteMissing},
			{name: "ValuesAreCopied", run: testValuesCopied},
		}},
		// Apply's ifs: record id → required version, 0 meaning the record
		// must not exist, checked against the state before the commit.
		{"Precondition", preconditionTests()},
		// Applied.Prev and a Watcher's Event.Prev: the value each op's
		// record had just before it, chained through the commit's ops.
		{"Prev", prevTests()},
		// Many writers and readers at once, every operation recorded and
		// the history checked afterwards (after bbolt's
		// concurrent_test.go): gap-free unique versions, commits whose
		// preconditions held at their place in the log, a log that
		// replays to the snapshot, and readers that only ever saw whole
		// commits.
		{"Concurrency", []test{
			{name: "HistoryCheck", run: testConcurrentHistory},
			{name: "ContextDoneInFlight", run: testContextDoneInFlight},
		}},
		// The bounded change log and the compacted catch-up that serves
		// cursors behind it.
		{"Retention", []test{
			{name: "LogKeepsRetainCommits", run: testLogRetention, cfg: store.Config{RetainCommits: 10}},
			{name: "CatchUpFromCompactedCursor", run: testCatchUpScenario, cfg: store.Config{RetainCommits: 2}},
			{name: "CatchUpRandomised", run: testCatchUpRandomised, cfg: store.Config{RetainCommits: 5}, clocked: true},
		}},
		// The deletion tombstones behind catch-ups: kept for at least
		// Config.RetainTombstones, forgotten after it (by the next commit
		// at the latest), and then a catch-up from before them is refused
		// with ErrHistoryGone, while later cursors still work.
		{"Tombstones", []test{
			{name: "HistoryGonePastHorizon", run: testHistoryGone, cfg: tombstoneConfig, clocked: true},
			{name: "KeptWithinHorizon", run: testTombstonesKept, cfg: tombstoneConfig, clocked: true},
			{name: "DropForgetsHorizon", run: testDropForgetsHorizon, cfg: tombstoneConfig, clocked: true},
		}},
		// What replaces or ends a history: Drop, Close and reopening, and
		// calls whose context is already done.
		// Source positions (store.Positions), for the stores that keep
		// them: stored with their commit or drop, read back, kept across
		// a reopen.
		{"Positions", positionTests()},
		// Idempotency keys (store.Keys), for the stores that record them:
		// with their commit, atomically, until they expire.
		{"Keys", keyTests()},
		{"Lifecycle", []test{
			{name: "Drop", run: testDrop},
			{name: "DropUnwritten", run: testDropUnwritten},
			{name: "Reopen", run: testReopen, cfg: store.Config{RetainTombstones: time.Hour}, clocked: true},
			{name: "Closed", run: testClosed},
			{name: "DoneContext", run: testDoneContext},
		}},
	}
}

// fixture is one subtest's open store, with helpers that fail the test on
// unexpected errors.
type fixture struct {
	t   *testing.T
	h   Harness
	cfg store.Config
	s   store.Store
	// clk is the store's clock, for a clocked test; nil otherwise.
	clk *Clock
}

// open opens the harness's store for tc and closes it when the test ends.
func open(t *testing.T, h Harness, tc test) *fixture {
	t.Helper()
	f := &fixture{t: t, h: h, cfg: tc.cfg}
	if tc.clocked {
		f.clk = NewClock(clockStart())
		f.cfg.Now = f.clk.Now
	}
	f.s = f.mustOpen()
	t.Cleanup(func() {
		// The store may already be closed by the test; that error is
		// expected and anything else has been checked where it matters.
		_ = f.s.Close()
	})
	return f
}

// mustOpen calls the harness's Open.
func (f *fixture) mustOpen() store.Store {
	f.t.Helper()
	s, err := f.h.Open(f.cfg)
	if err != nil {
		f.t.Fatalf("Open: %v", err)
	}
	if s == nil {
		f.t.Fatal("Open returned a nil store and no error")
	}
	return s
}

// reopen closes the store, requiring success, and opens it again with the
// same Config.
func (f *fixture) reopen() {
	f.t.Helper()
	if err := f.s.Close(); err != nil {
		f.t.Fatalf("Close: %v", err)
	}
	f.s = f.mustOpen()
}

// ctx is the context of the calls the fixture makes.
func (f *fixture) ctx() context.Context { return f.t.Context() }

// head calls Head, failing the test on an error.
func (f *fixture) head(coll string) protocol.Head {
	f.t.Helper()
	h, err := f.s.Head(f.ctx(), coll)
	if err != nil {
		f.t.Fatalf("Head(%s): %v", coll, err)
	}
	return h
}

// apply calls Apply, failing the test on an error.
func (f *fixture) apply(coll string, ifs map[string]uint64, ops ...protocol.Op) store.Applied {
	f.t.Helper()
	a, err := f.s.Apply(f.ctx(), coll, ops, ifs)
	if err != nil {
		f.t.Fatalf("Apply(%s, %s, if %v): %v", coll, opsString(ops), ifs, err)
	}
	return a
}

// get calls Get, failing the test on an error.
func (f *fixture) get(coll, id string) protocol.Record {
	f.t.Helper()
	r, err := f.s.Get(f.ctx(), coll, id)
	if err != nil {
		f.t.Fatalf("Get(%s, %q): %v", coll, id, err)
	}
	return r
}

// requireMissing checks that Get of id fails with ErrNotFound.
func (f *fixture) requireMissing(coll, id string) {
	f.t.Helper()
	r, err := f.s.Get(f.ctx(), coll, id)
	if !errors.Is(err, store.ErrNotFound) {
		f.t.Fatalf("Get(%s, %q) = %+v, %v; want ErrNotFound", coll, id, r, err)
	}
}

// snapshot calls Snapshot, failing the test on an error or nil Records.
func (f *fixture) snapshot(coll string) protocol.Snapshot {
	f.t.Helper()
	s, err := f.s.Snapshot(f.ctx(), coll)
	if err != nil {
		f.t.Fatalf("Snapshot(%s): %v", coll, err)
	}
	if s.Records == nil {
		f.t.Fatalf("Snapshot(%s).Records is nil, want a non-nil slice", coll)
	}
	return s
}

// changes calls Changes, failing the test on an error or nil Commits.
func (f *fixture) changes(coll string, after uint64, page store.Page) protocol.Changes {
	f.t.Helper()
	ch, err := f.s.Changes(f.ctx(), coll, after, page)
	if err != nil {
		f.t.Fatalf("Changes(%s, after %d, %+v): %v", coll, after, page, err)
	}
	if ch.Commits == nil {
		f.t.Fatalf("Changes(%s, after %d, %+v).Commits is nil, want a non-nil slice", coll, after, page)
	}
	return ch
}

// catchUp calls CatchUp, failing the test on an error, nil slices or
// Compacted unset.
func (f *fixture) catchUp(coll string, after uint64) protocol.CatchUp {
	f.t.Helper()
	cu, err := f.s.CatchUp(f.ctx(), coll, after)
	if err != nil {
		f.t.Fatalf("CatchUp(%s, after %d): %v", coll, after, err)
	}
	if cu.Records == nil || cu.Deleted == nil {
		f.t.Fatalf("CatchUp(%s, after %d) has a nil Records or Deleted, want non-nil slices", coll, after)
	}
	if !cu.Compacted {
		f.t.Fatalf("CatchUp(%s, after %d).Compacted is false, want true", coll, after)
	}
	return cu
}

// drop calls Drop, failing the test on an error.
func (f *fixture) drop(coll string) protocol.Head {
	f.t.Helper()
	h, err := f.s.Drop(f.ctx(), coll)
	if err != nil {
		f.t.Fatalf("Drop(%s): %v", coll, err)
	}
	return h
}

// observation is everything a reader can see of a collection, taken to
// prove that a failed call changed nothing.
type observation struct {
	head     protocol.Head
	snapshot protocol.Snapshot
	log      protocol.Changes
	catchUp  protocol.CatchUp
	// logRead and cuRead tell where the log and the catch-up were read,
	// or why they could not be.
	logRead, cuRead readAt
}

// readAt is where a read was made, or why it failed.
type readAt struct {
	at  protocol.Head
	err error
}

// observe reads the collection's head, snapshot, whole log and catch-up
// from version 0. The log and the catch-up may fail (compacted, history
// gone); the errors are kept for comparison.
func (f *fixture) observe(coll string) observation {
	f.t.Helper()
	var o observation
	o.head = f.head(coll)
	o.snapshot = f.snapshot(coll)
	o.log, o.logRead.err = f.s.Changes(f.ctx(), coll, 0, store.Page{})
	o.logRead.at = protocol.Head{Epoch: o.log.Epoch, Version: o.log.Version}
	o.catchUp, o.cuRead.err = f.s.CatchUp(f.ctx(), coll, 0)
	o.cuRead.at = protocol.Head{Epoch: o.catchUp.Epoch, Version: o.catchUp.Version}
	return o
}

// requireUnchanged fails the test if the collection differs from before.
func (f *fixture) requireUnchanged(coll string, before observation, after string) {
	f.t.Helper()
	now := f.observe(coll)
	if now.head != before.head {
		f.t.Fatalf("after %s: head is %+v, was %+v", after, now.head, before.head)
	}
	if d := diffSnapshot(now.snapshot, before.snapshot); d != "" {
		f.t.Fatalf("after %s: snapshot changed: %s", after, d)
	}
	if f.sameRead(after, "Changes(0)", now.logRead, before.logRead) {
		if d := diffCommits(now.log.Commits, before.log.Commits); d != "" {
			f.t.Fatalf("after %s: log changed: %s", after, d)
		}
	}
	if f.sameRead(after, "CatchUp(0)", now.cuRead, before.cuRead) {
		if d := diffRecords(now.catchUp.Records, before.catchUp.Records); d != "" {
			f.t.Fatalf("after %s: CatchUp(0) records changed: %s", after, d)
		}
		if d := diffIDSets(now.catchUp.Deleted, before.catchUp.Deleted); d != "" {
			f.t.Fatalf("after %s: CatchUp(0) deleted ids changed: %s", after, d)
		}
	}
}

// sameRead fails the test unless a read (call) failed both now and
// before, or succeeded both times at the same epoch and version; it
// reports whether it succeeded.
func (f *fixture) sameRead(after, call string, now, before readAt) bool {
	f.t.Helper()
	if (now.err == nil) != (before.err == nil) {
		f.t.Fatalf("after %s: %s error is %v, was %v", after, call, now.err, before.err)
	}
	if now.err != nil {
		return false
	}
	if now.at != before.at {
		f.t.Fatalf("after %s: %s at %s:%d, was at %s:%d", after, call, now.at.Epoch, now.at.Version, before.at.Epoch, before.at.Version)
	}
	return true
}

// put returns a put op; value must be compact JSON.
func put(id, value string) protocol.Op {
	return protocol.Op{Op: protocol.OpPut, ID: id, Value: json.RawMessage(value)}
}

// del returns a delete op.
func del(id string) protocol.Op {
	return protocol.Op{Op: protocol.OpDelete, ID: id}
}

// ifs builds a precondition map from id, version pairs.
func ifs(pairs ...any) map[string]uint64 {
	m := make(map[string]uint64, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		var v uint64
		switch n := pairs[i+1].(type) {
		case int:
			v = uint64(n)
		case uint64:
			v = n
		default:
			panic("storetest: ifs wants int or uint64 versions")
		}
		m[pairs[i].(string)] = v
	}
	return m
}

// randomSeed returns a seed for a test's random choices, which the test
// logs if it fails.
func randomSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d", seed)
		}
	})
	return seed
}

// Clock is a clock for store.Config.Now that stands still until advanced,
// for the tests of stores as for the suite's. It is safe for concurrent
// use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start until advanced.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// clockStart returns where test clocks start: a time with nanoseconds, not
// in UTC, so stores must convert it.
func clockStart() time.Time {
	return time.Date(2031, time.March, 4, 5, 6, 7, 891_234_567, time.FixedZone("UTC+2", 2*3600))
}
