package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// keyTests check store.Keys: an idempotency key recorded with its commit,
// atomically, found by a retry before anything else is checked, expiring
// after Config.KeyTTL, bounded by Config.MaxKeys, forgotten by Drop. A
// store that does not implement store.Keys passes them as they are.
func keyTests() []test {
	return []test{
		{name: "RecordedWithCommit", run: testKeyRecorded},
		{name: "RetryAppliesNothing", run: testKeyRetry},
		{name: "FoundBeforeChecks", run: testKeyBeforeChecks},
		{name: "FailedCommitRecordsNothing", run: testKeyFailedCommit},
		{name: "PerCollection", run: testKeyPerCollection},
		{name: "Expires", run: testKeyExpires, clocked: true, cfg: store.Config{KeyTTL: time.Hour}},
		{name: "Bounded", run: testKeyBounded, cfg: store.Config{MaxKeys: 4}},
		{name: "DropForgets", run: testKeyDrop},
		{name: "SurvivesReopen", run: testKeyReopen},
		{name: "ConcurrentSameKey", run: testKeyConcurrent},
	}
}

// keys returns the fixture's store as a store.Keys, skipping the test
// when it is not one.
func (f *fixture) keys() store.Keys {
	k, ok := f.s.(store.Keys)
	if !ok {
		f.t.Skip("the store does not implement store.Keys")
	}
	return k
}

// keyID returns a valid key id made of n.
func keyID(n int) string { return fmt.Sprintf("%064x", n) }

// newKey returns a key whose answer names the commit's version.
func newKey(id, fp string) store.NewKey {
	return store.NewKey{ID: id, Fingerprint: fp, Answer: func(a store.Applied) []byte {
		return []byte("v" + strconv.FormatUint(a.Commit.Version, 10))
	}}
}

// applyKeyed calls ApplyKeyed, failing the test on an error.
func (f *fixture) applyKeyed(k store.Keys, coll string, key store.NewKey, ops ...protocol.Op) store.Applied {
	f.t.Helper()
	a, err := k.ApplyKeyed(f.ctx(), coll, ops, nil, key)
	if err != nil {
		f.t.Fatalf("ApplyKeyed(%s, %s, key %s): %v", coll, opsString(ops), key.ID, err)
	}
	return a
}

// requireKey checks that the key id of coll is recorded with fp and answer.
func (f *fixture) requireKey(k store.Keys, coll, id, fp, answer string) store.Key {
	f.t.Helper()
	got, err := k.Key(f.ctx(), coll, id)
	if err != nil {
		f.t.Fatalf("Key(%s, %s): %v", coll, id, err)
	}
	if got.ID != id || got.Fingerprint != fp || string(got.Answer) != answer {
		f.t.Fatalf("Key(%s, %s) = {%s %q %q}, want {%s %q %q}", coll, id, got.ID, got.Fingerprint, got.Answer, id, fp, answer)
	}
	return got
}

// requireNoKey checks that Key of id fails with ErrNotFound.
func (f *fixture) requireNoKey(k store.Keys, coll, id string) {
	f.t.Helper()
	got, err := k.Key(f.ctx(), coll, id)
	if !errors.Is(err, store.ErrNotFound) {
		f.t.Fatalf("Key(%s, %s) = %+v, %v; want ErrNotFound", coll, id, got, err)
	}
}

// requireExists checks that err is a *KeyExistsError carrying fp and
// answer.
func (f *fixture) requireExists(err error, fp, answer string) {
	f.t.Helper()
	var ke *store.KeyExistsError
	if !errors.As(err, &ke) || !errors.Is(err, store.ErrKeyExists) {
		f.t.Fatalf("err = %v, want a *store.KeyExistsError", err)
	}
	if ke.Key.Fingerprint != fp || string(ke.Key.Answer) != answer {
		f.t.Fatalf("KeyExistsError carries {%q %q}, want {%q %q}", ke.Key.Fingerprint, ke.Key.Answer, fp, answer)
	}
}

func testKeyRecorded(t *testing.T, f *fixture) {
	k := f.keys()
	f.requireNoKey(k, "c", keyID(1))
	f.apply("c", nil, put("a", "1"))
	a := f.applyKeyed(k, "c", newKey(keyID(1), "fp1"), put("b", "2"))
	if a.Commit.Version != 2 {
		t.Fatalf("keyed commit at version %d, want 2", a.Commit.Version)
	}
	got := f.requireKey(k, "c", keyID(1), "fp1", "v2")
	if !got.At.Equal(a.Commit.At) {
		t.Fatalf("key recorded at %v, want the commit's time %v", got.At, a.Commit.At)
	}
	if r := f.get("c", "b"); string(r.Value) != "2" {
		t.Fatalf("record b = %s, want 2", r.Value)
	}
	// The answer is the store's copy: changing what Key returned changes
	// nothing.
	got.Answer[0] = 'x'
	f.requireKey(k, "c", keyID(1), "fp1", "v2")
}

func testKeyRetry(t *testing.T, f *fixture) {
	k := f.keys()
	f.applyKeyed(k, "c", newKey(keyID(1), "fp1"), put("a", "1"))
	before := f.observe("c")
	_, err := k.ApplyKeyed(f.ctx(), "c", []protocol.Op{put("a", "2")}, nil, newKey(keyID(1), "fp2"))
	f.requireExists(err, "fp1", "v1")
	f.requireUnchanged("c", before, "a retry with the same key")
	// Another key applies.
	f.applyKeyed(k, "c", newKey(keyID(2), "fp1"), put("a", "3"))
	if h := f.head("c"); h.Version != 2 {
		t.Fatalf("version %d after two keys, want 2", h.Version)
	}
}

func testKeyBeforeChecks(t *testing.T, f *fixture) {
	k := f.keys()
	f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "1"))
	// The retry's precondition would fail now, and its delete find
	// nothing: the key is what answers.
	_, err := k.ApplyKeyed(f.ctx(), "c", []protocol.Op{put("a", "1")}, map[string]uint64{"a": 0}, newKey(keyID(1), "fp"))
	f.requireExists(err, "fp", "v1")
	_, err = k.ApplyKeyed(f.ctx(), "c", []protocol.Op{del("nope")}, nil, newKey(keyID(1), "fp"))
	f.requireExists(err, "fp", "v1")
}

func testKeyFailedCommit(t *testing.T, f *fixture) {
	k := f.keys()
	f.apply("c", nil, put("a", "1"))
	_, err := k.ApplyKeyed(f.ctx(), "c", []protocol.Op{put("a", "2")}, map[string]uint64{"a": 7}, newKey(keyID(1), "fp"))
	if !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("ApplyKeyed with a failing precondition: %v, want ErrPrecondition", err)
	}
	_, err = k.ApplyKeyed(f.ctx(), "c", []protocol.Op{del("nope")}, nil, newKey(keyID(1), "fp"))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ApplyKeyed deleting a missing record: %v, want ErrNotFound", err)
	}
	f.requireNoKey(k, "c", keyID(1))
	f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "3"))
	f.requireKey(k, "c", keyID(1), "fp", "v2")
}

func testKeyPerCollection(t *testing.T, f *fixture) {
	k := f.keys()
	f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "1"))
	f.requireNoKey(k, "d", keyID(1))
	f.apply("d", nil, put("z", "1"))
	f.applyKeyed(k, "d", newKey(keyID(1), "other"), put("a", "1"))
	f.requireKey(k, "c", keyID(1), "fp", "v1")
	f.requireKey(k, "d", keyID(1), "other", "v2")
}

func testKeyExpires(t *testing.T, f *fixture) {
	k := f.keys()
	f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "1"))
	f.clk.Advance(time.Hour - time.Millisecond)
	f.requireKey(k, "c", keyID(1), "fp", "v1")
	f.clk.Advance(time.Millisecond)
	f.requireNoKey(k, "c", keyID(1))
	// Expired, the key applies again: a retry after the TTL is a new
	// request.
	a := f.applyKeyed(k, "c", newKey(keyID(1), "fp2"), put("a", "2"))
	if a.Commit.Version != 2 {
		t.Fatalf("commit after expiry at version %d, want 2", a.Commit.Version)
	}
	f.requireKey(k, "c", keyID(1), "fp2", "v2")
}

func testKeyBounded(t *testing.T, f *fixture) {
	k := f.keys()
	const n = 40
	for i := range n {
		f.applyKeyed(k, "c", newKey(keyID(i), "fp"), put("a", strconv.Itoa(i)))
	}
	// The oldest are forgotten, the newest kept.
	f.requireNoKey(k, "c", keyID(0))
	f.requireKey(k, "c", keyID(n-1), "fp", "v"+strconv.Itoa(n))
	kept := 0
	for i := range n {
		if _, err := k.Key(f.ctx(), "c", keyID(i)); err == nil {
			kept++
		}
	}
	if kept > 2*4 {
		t.Fatalf("%d keys kept with MaxKeys 4, want at most 8 (the bound, and a batch's worth more)", kept)
	}
}

func testKeyDrop(t *testing.T, f *fixture) {
	k := f.keys()
	f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "1"))
	f.drop("c")
	f.requireNoKey(k, "c", keyID(1))
	a := f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "1"))
	if a.Commit.Version != 1 {
		t.Fatalf("keyed commit after Drop at version %d, want 1", a.Commit.Version)
	}
}

func testKeyReopen(t *testing.T, f *fixture) {
	k := f.keys()
	f.applyKeyed(k, "c", newKey(keyID(1), "fp"), put("a", "1"))
	f.reopen()
	k = f.keys()
	if !f.h.Persistent {
		f.requireNoKey(k, "c", keyID(1))
		return
	}
	f.requireKey(k, "c", keyID(1), "fp", "v1")
	_, err := k.ApplyKeyed(f.ctx(), "c", []protocol.Op{put("a", "1")}, nil, newKey(keyID(1), "fp"))
	f.requireExists(err, "fp", "v1")
	if h := f.head("c"); h.Version != 1 {
		t.Fatalf("version %d after a retry across a reopen, want 1", h.Version)
	}
}

func testKeyConcurrent(t *testing.T, f *fixture) {
	k := f.keys()
	stores := []store.Keys{k}
	if f.h.Shared {
		other := f.mustOpen()
		t.Cleanup(func() { other.Close() })
		stores = append(stores, other.(store.Keys))
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = stores[i%len(stores)].ApplyKeyed(f.ctx(), "c", []protocol.Op{put("a", strconv.Itoa(i))}, nil, newKey(keyID(1), "fp"))
		})
	}
	wg.Wait()
	applied := 0
	for i, err := range errs {
		switch {
		case err == nil:
			applied++
		case errors.Is(err, store.ErrKeyExists):
		default:
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if applied != 1 {
		t.Fatalf("%d of %d writers with one key applied, want 1", applied, n)
	}
	if h := f.head("c"); h.Version != 1 {
		t.Fatalf("version %d, want 1", h.Version)
	}
}
