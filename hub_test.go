package viewsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
)

// TestMain fails the run if any test leaves a goroutine behind: every
// store, hub, server and client a test starts must be stopped by it.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// checkErr fails the test unless err is want (errors.Is) and maps to code.
func checkErr(t testing.TB, what string, err, want error, code protocol.Code) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
		return
	}
	if got := viewsync.ErrorCode(err); got != code {
		t.Errorf("%s: ErrorCode(%v) = %q, want %q", what, err, got, code)
	}
}

func TestCollectionName(t *testing.T) {
	h := newHub(t, openStore(t, boltstore.Options{}))
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"products", true},
		{"a.b-c_d9", true},
		{"9lives", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"Products", false},
		{"_a", false},
		{".a", false},
		{"-a", false},
		{"a/b", false},
		{"a b", false},
		{"a:b", false},
		{"caf\u00e9", false},
		{"a\x00", false},
		{"..", false},
	}
	for _, tt := range tests {
		c, err := h.Collection(tt.name)
		if !tt.ok {
			if c != nil {
				t.Errorf("Collection(%q) returned a collection", tt.name)
			}
			checkErr(t, fmt.Sprintf("Collection(%q)", tt.name), err, viewsync.ErrInvalid, protocol.CodeBadRequest)
			continue
		}
		if err != nil {
			t.Errorf("Collection(%q): %v", tt.name, err)
			continue
		}
		if c.Name() != tt.name {
			t.Errorf("Collection(%q).Name() = %q", tt.name, c.Name())
		}
		// Every valid name exists: never written, it is empty at version 0.
		if hd := head(t, c); hd.Version != 0 || hd.Epoch == "" {
			t.Errorf("head of new collection %q = %+v, want version 0 in some epoch", tt.name, hd)
		}
		if s := snapshot(t, c); len(s.Records) != 0 || s.Version != 0 || s.Collection != tt.name {
			t.Errorf("snapshot of new collection %q = %+v, want empty at 0", tt.name, s)
		}
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want protocol.Code
	}{
		{nil, ""},
		{viewsync.ErrInvalid, protocol.CodeBadRequest},
		{fmt.Errorf("put: %w", viewsync.ErrInvalid), protocol.CodeBadRequest},
		{viewsync.ErrEmptyCommit, protocol.CodeBadRequest},
		{protocol.ErrBadCursor, protocol.CodeBadRequest},
		{protocol.ErrBadName, protocol.CodeBadRequest},
		{protocol.ErrBadID, protocol.CodeBadRequest},
		{protocol.ErrBadValue, protocol.CodeBadRequest},
		{protocol.ErrBadOp, protocol.CodeBadRequest},
		{viewsync.ErrTooLarge, protocol.CodeTooLarge},
		// Too large wins over invalid when both apply.
		{errors.Join(viewsync.ErrInvalid, viewsync.ErrTooLarge), protocol.CodeTooLarge},
		{viewsync.ErrNotFound, protocol.CodeNotFound},
		{fmt.Errorf("get: %w", store.ErrNotFound), protocol.CodeNotFound},
		{viewsync.ErrPrecondition, protocol.CodePreconditionFailed},
		{fmt.Errorf("put: %w", &store.PreconditionError{ID: "a", Want: 1, Have: 2}), protocol.CodePreconditionFailed},
		{viewsync.ErrClosed, protocol.CodeUnavailable},
		{fmt.Errorf("commit: %w", store.ErrClosed), protocol.CodeUnavailable},
		{viewsync.ErrUnavailable, protocol.CodeUnavailable},
		{fmt.Errorf("commit: %w", store.ErrUnavailable), protocol.CodeUnavailable},
		{context.DeadlineExceeded, protocol.CodeTimeout},
		{errors.New("disk on fire"), protocol.CodeInternal},
		{store.ErrCompacted, protocol.CodeInternal},
	}
	for _, tt := range tests {
		if got := viewsync.ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.want)
		}
		if tt.want != "" && tt.want.Status() < 400 {
			t.Errorf("code %q has status %d, want an error status", tt.want, tt.want.Status())
		}
	}
}

// TestSingleRecordWrites runs Put, Get, Delete and Patch with their
// preconditions through one history, checking after every step the
// outcome, the error's wire code, and that a failed write changed nothing.
func TestSingleRecordWrites(t *testing.T) {
	_, c := testHub(t)
	ctx := t.Context()
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	steps := []struct {
		name    string
		do      func() (viewsync.Record, error)
		wantErr error
		code    protocol.Code
		// want is the record the step returns when it succeeds.
		want viewsync.Record
	}{
		{"get missing", func() (viewsync.Record, error) { return c.Get(ctx, "a") }, viewsync.ErrNotFound, protocol.CodeNotFound, viewsync.Record{}},
		{"put if version on missing", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`1`), viewsync.IfVersion(3)) }, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"create", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`1`), viewsync.IfAbsent()) }, nil, "", viewsync.Record{ID: "a", Value: raw(`1`), Version: 1}},
		{"get", func() (viewsync.Record, error) { return c.Get(ctx, "a") }, nil, "", viewsync.Record{ID: "a", Value: raw(`1`), Version: 1}},
		{"create again", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`2`), viewsync.IfAbsent()) }, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"update at current version", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`2`), viewsync.IfVersion(1)) }, nil, "", viewsync.Record{ID: "a", Value: raw(`2`), Version: 2}},
		{"update at stale version", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`3`), viewsync.IfVersion(1)) }, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"unconditional put", func() (viewsync.Record, error) { return c.Put(ctx, "b", raw(`"b"`)) }, nil, "", viewsync.Record{ID: "b", Value: raw(`"b"`), Version: 3}},
		{"delete at stale version", func() (viewsync.Record, error) {
			v, err := c.Delete(ctx, "a", viewsync.IfVersion(1))
			return viewsync.Record{Version: v}, err
		}, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"delete if absent", func() (viewsync.Record, error) {
			v, err := c.Delete(ctx, "a", viewsync.IfAbsent())
			return viewsync.Record{Version: v}, err
		}, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"delete at current version", func() (viewsync.Record, error) {
			v, err := c.Delete(ctx, "a", viewsync.IfVersion(2))
			return viewsync.Record{Version: v}, err
		}, nil, "", viewsync.Record{Version: 4}},
		{"get deleted", func() (viewsync.Record, error) { return c.Get(ctx, "a") }, viewsync.ErrNotFound, protocol.CodeNotFound, viewsync.Record{}},
		{"delete missing", func() (viewsync.Record, error) {
			v, err := c.Delete(ctx, "a")
			return viewsync.Record{Version: v}, err
		}, viewsync.ErrNotFound, protocol.CodeNotFound, viewsync.Record{}},
		{"patch missing", func() (viewsync.Record, error) { return c.Patch(ctx, "a", raw(`{"x":1}`)) }, viewsync.ErrNotFound, protocol.CodeNotFound, viewsync.Record{}},
		{"recreate after delete", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`{"x":1}`), viewsync.IfAbsent()) }, nil, "", viewsync.Record{ID: "a", Value: raw(`{"x":1}`), Version: 5}},
		{"patch at stale version", func() (viewsync.Record, error) { return c.Patch(ctx, "a", raw(`{"y":2}`), viewsync.IfVersion(2)) }, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"patch if absent", func() (viewsync.Record, error) { return c.Patch(ctx, "a", raw(`{"y":2}`), viewsync.IfAbsent()) }, viewsync.ErrPrecondition, protocol.CodePreconditionFailed, viewsync.Record{}},
		{"patch at current version", func() (viewsync.Record, error) { return c.Patch(ctx, "a", raw(`{"y":2}`), viewsync.IfVersion(5)) }, nil, "", viewsync.Record{ID: "a", Value: raw(`{"x":1,"y":2}`), Version: 6}},
		{"patch with bad JSON", func() (viewsync.Record, error) { return c.Patch(ctx, "a", raw(`{"y":`)) }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"put bad JSON", func() (viewsync.Record, error) { return c.Put(ctx, "a", raw(`{"x":}`)) }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"put empty value", func() (viewsync.Record, error) { return c.Put(ctx, "a", nil) }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"put empty id", func() (viewsync.Record, error) { return c.Put(ctx, "", raw(`1`)) }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"put id with control character", func() (viewsync.Record, error) { return c.Put(ctx, "a\nb", raw(`1`)) }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"put id not UTF-8", func() (viewsync.Record, error) { return c.Put(ctx, "a\xffb", raw(`1`)) }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"get empty id", func() (viewsync.Record, error) { return c.Get(ctx, "") }, viewsync.ErrInvalid, protocol.CodeBadRequest, viewsync.Record{}},
		{"get final", func() (viewsync.Record, error) { return c.Get(ctx, "a") }, nil, "", viewsync.Record{ID: "a", Value: raw(`{"x":1,"y":2}`), Version: 6}},
	}
	for _, st := range steps {
		before := head(t, c)
		got, err := st.do()
		after := head(t, c)
		if st.wantErr != nil {
			checkErr(t, st.name, err, st.wantErr, st.code)
			if after != before {
				t.Errorf("%s: failed write moved the head from %+v to %+v", st.name, before, after)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got.ID != st.want.ID || string(got.Value) != string(st.want.Value) || got.Version != st.want.Version {
			t.Errorf("%s: got %s=%s@%d, want %s=%s@%d", st.name, got.ID, got.Value, got.Version, st.want.ID, st.want.Value, st.want.Version)
		}
	}

	// A precondition failure says which record failed and why.
	_, err := c.Put(ctx, "a", raw(`0`), viewsync.IfVersion(1))
	var pe *store.PreconditionError
	if !errors.As(err, &pe) || pe.ID != "a" || pe.Want != 1 || pe.Have != 6 {
		t.Errorf("precondition error = %#v (%v), want record a, want 1, have 6", pe, err)
	}
}

// TestCommit covers multi-op commits: all or nothing, preconditions on
// several records, and every kind of bad input, which must change nothing.
func TestCommit(t *testing.T) {
	_, c := testHub(t)
	ctx := t.Context()
	first := commit(t, c, viewsync.Put("a", []byte(`1`)), viewsync.Put("b", []byte(`2`)), viewsync.Put("c", []byte(`3`)))
	if first.Version != 1 || len(first.Ops) != 3 || first.At.IsZero() {
		t.Fatalf("first commit = %+v, want version 1 with 3 ops and a time", first)
	}

	tests := []struct {
		name    string
		ops     []viewsync.Op
		ifs     map[string]uint64
		wantErr error
		code    protocol.Code
	}{
		{"no ops", nil, nil, viewsync.ErrEmptyCommit, protocol.CodeBadRequest},
		{"empty ops", []viewsync.Op{}, map[string]uint64{"a": 1}, viewsync.ErrEmptyCommit, protocol.CodeBadRequest},
		{"one precondition of two fails", []viewsync.Op{viewsync.Put("a", []byte(`10`)), viewsync.Put("d", []byte(`4`))}, map[string]uint64{"a": 1, "b": 2}, viewsync.ErrPrecondition, protocol.CodePreconditionFailed},
		{"must-not-exist on existing", []viewsync.Op{viewsync.Put("d", []byte(`4`))}, map[string]uint64{"a": 0}, viewsync.ErrPrecondition, protocol.CodePreconditionFailed},
		{"precondition on an id not written", []viewsync.Op{viewsync.Put("d", []byte(`4`))}, map[string]uint64{"zz": 1}, viewsync.ErrPrecondition, protocol.CodePreconditionFailed},
		{"delete of a missing record after puts", []viewsync.Op{viewsync.Put("a", []byte(`10`)), viewsync.Delete("nope")}, nil, viewsync.ErrNotFound, protocol.CodeNotFound},
		{"delete twice", []viewsync.Op{viewsync.Delete("a"), viewsync.Delete("a")}, nil, viewsync.ErrNotFound, protocol.CodeNotFound},
		{"unknown op", []viewsync.Op{viewsync.Put("a", []byte(`10`)), {Op: "upsert", ID: "b", Value: []byte(`1`)}}, nil, viewsync.ErrInvalid, protocol.CodeBadRequest},
		{"delete with a value", []viewsync.Op{{Op: protocol.OpDelete, ID: "a", Value: []byte(`1`)}}, nil, viewsync.ErrInvalid, protocol.CodeBadRequest},
		{"put without value", []viewsync.Op{{Op: protocol.OpPut, ID: "a"}}, nil, viewsync.ErrInvalid, protocol.CodeBadRequest},
		{"put of invalid JSON", []viewsync.Op{viewsync.Put("a", []byte(`10`)), viewsync.Put("b", []byte(`{`))}, nil, viewsync.ErrInvalid, protocol.CodeBadRequest},
		{"put of two JSON values", []viewsync.Op{viewsync.Put("a", []byte(`1 2`))}, nil, viewsync.ErrInvalid, protocol.CodeBadRequest},
		{"empty id", []viewsync.Op{viewsync.Put("", []byte(`1`))}, nil, viewsync.ErrInvalid, protocol.CodeBadRequest},
		{"bad precondition id", []viewsync.Op{viewsync.Put("a", []byte(`10`))}, map[string]uint64{"": 1}, viewsync.ErrInvalid, protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		before := snapshot(t, c)
		_, err := c.Commit(ctx, tt.ops, tt.ifs)
		checkErr(t, tt.name, err, tt.wantErr, tt.code)
		after := snapshot(t, c)
		if d := stateOf(after.Records).diff(stateOf(before.Records)); d != "" || after.Version != before.Version {
			t.Errorf("%s: failed commit changed the collection: version %d → %d; %s", tt.name, before.Version, after.Version, d)
		}
	}

	// Preconditions that hold: ops apply in order, and a record written and
	// deleted in one commit is gone.
	ifs := map[string]uint64{"a": 1, "b": 1, "d": 0}
	cm, err := c.Commit(ctx, []viewsync.Op{
		viewsync.Put("a", []byte(`11`)),
		viewsync.Delete("b"),
		viewsync.Put("d", []byte(`4`)),
		viewsync.Put("e", []byte(`5`)),
		viewsync.Delete("e"),
		viewsync.Put("a", []byte(`12`)),
	}, ifs)
	if err != nil {
		t.Fatalf("commit with holding preconditions: %v", err)
	}
	if cm.Version != 2 {
		t.Errorf("commit version = %d, want 2", cm.Version)
	}
	if want := map[string]uint64{"a": 1, "b": 1, "d": 0}; !maps.Equal(ifs, want) {
		t.Errorf("Commit modified the caller's preconditions: %v", ifs)
	}
	want := state{
		"a": {ID: "a", Value: json.RawMessage(`12`), Version: 2},
		"c": {ID: "c", Value: json.RawMessage(`3`), Version: 1},
		"d": {ID: "d", Value: json.RawMessage(`4`), Version: 2},
	}
	if d := stateOf(snapshot(t, c).Records).diff(want); d != "" {
		t.Errorf("after commit: %s", d)
	}
}

func TestCommitLimits(t *testing.T) {
	_, c := testHub(t, viewsync.WithLimits(viewsync.Limits{MaxOpsPerCommit: 3, MaxIDBytes: 8, MaxValueBytes: 16}))
	ctx := t.Context()
	ops := func(n int) []viewsync.Op {
		var out []viewsync.Op
		for i := range n {
			out = append(out, viewsync.Put(fmt.Sprintf("o%d", i), []byte(`0`)))
		}
		return out
	}
	tests := []struct {
		name    string
		ops     []viewsync.Op
		ifs     map[string]uint64
		wantErr error
	}{
		// An id over the limit is a bad id (400 bad_request), as the
		// contract lists it; too_large is for bodies, values and op counts.
		{"ops at limit", ops(3), nil, nil},
		{"ops over limit", ops(4), nil, viewsync.ErrTooLarge},
		{"id at limit", []viewsync.Op{viewsync.Put("12345678", []byte(`0`))}, nil, nil},
		{"id over limit", []viewsync.Op{viewsync.Put("123456789", []byte(`0`))}, nil, viewsync.ErrInvalid},
		{"id over limit in bytes, not runes", []viewsync.Op{viewsync.Put("\u00e9\u00e9\u00e9\u00e9\u00e9", []byte(`0`))}, nil, viewsync.ErrInvalid},
		{"id over limit in a delete", []viewsync.Op{viewsync.Delete("123456789")}, nil, viewsync.ErrInvalid},
		{"id over limit in a precondition", []viewsync.Op{viewsync.Put("a", []byte(`0`))}, map[string]uint64{"123456789": 0}, viewsync.ErrInvalid},
		{"value at limit", []viewsync.Op{viewsync.Put("v", []byte(`"abcdefghijklmn"`))}, nil, nil},
		{"value over limit", []viewsync.Op{viewsync.Put("v", []byte(`"abcdefghijklmno"`))}, nil, viewsync.ErrTooLarge},
		// The limit applies to the compact form: 20 bytes sent, 16 stored.
		{"value at limit once compacted", []viewsync.Op{viewsync.Put("v", []byte(`{ "a" : 1234567890 }`))}, nil, nil},
		{"one value over limit among several", []viewsync.Op{viewsync.Put("x", []byte(`1`)), viewsync.Put("y", []byte(`[1,2,3,4,5,6,7,8,9]`))}, nil, viewsync.ErrTooLarge},
	}
	for _, tt := range tests {
		before := head(t, c)
		_, err := c.Commit(ctx, tt.ops, tt.ifs)
		after := head(t, c)
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if after.Version != before.Version+1 {
				t.Errorf("%s: head %d → %d, want one commit", tt.name, before.Version, after.Version)
			}
			continue
		}
		checkErr(t, tt.name, err, tt.wantErr, viewsync.ErrorCode(tt.wantErr))
		if after != before {
			t.Errorf("%s: rejected commit moved the head %+v → %+v", tt.name, before, after)
		}
	}

	// A patch whose result is over the limit is refused as well.
	put(t, c, "p", `{"a":1}`)
	_, err := c.Patch(ctx, "p", json.RawMessage(`{"b":"0123456789"}`))
	checkErr(t, "patch over limit", err, viewsync.ErrTooLarge, protocol.CodeTooLarge)
	if got := viewsync.DefaultMaxIDBytes; got != protocol.MaxIDLen {
		t.Errorf("DefaultMaxIDBytes = %d, want the contract's %d", got, protocol.MaxIDLen)
	}
}

// TestValuesCompacted checks that values are stored, returned and logged
// without insignificant whitespace, with strings and numbers untouched.
func TestValuesCompacted(t *testing.T) {
	_, c := testHub(t)
	const in = "{ \"name\" : \"a  b\\n\" ,\n\t\"n\": [ 1.50 , 2e3 ],\r\n \"o\" : { } }"
	const want = `{"name":"a  b\n","n":[1.50,2e3],"o":{}}`
	r := put(t, c, "x", in)
	cm := commit(t, c, viewsync.Put("y", []byte(in)))
	got, err := c.Get(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.Changes(t.Context(), viewsync.Cursor{}, viewsync.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Kind != viewsync.KindCommits || len(ch.Commits.Commits) != 2 {
		t.Fatalf("changes = %+v, want 2 commits", ch)
	}
	for what, v := range map[string]json.RawMessage{
		"Put result":    r.Value,
		"Commit result": cm.Ops[0].Value,
		"Get":           got.Value,
		"logged put":    ch.Commits.Commits[0].Ops[0].Value,
		"logged commit": ch.Commits.Commits[1].Ops[0].Value,
		"snapshot":      snapshot(t, c).Records[0].Value,
	} {
		if string(v) != want {
			t.Errorf("%s value = %s, want %s", what, v, want)
		}
	}
}

func TestPatchMergeSemantics(t *testing.T) {
	_, c := testHub(t)
	tests := []struct {
		name, target, patch, want string
	}{
		{"add field", `{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},
		{"replace field", `{"a":1,"b":2}`, `{"a":"x"}`, `{"a":"x","b":2}`},
		{"null removes", `{"a":1,"b":2}`, `{"a":null}`, `{"b":2}`},
		{"null of missing field", `{"a":1}`, `{"z":null}`, `{"a":1}`},
		{"nested merge", `{"a":{"b":1,"c":2}}`, `{"a":{"c":3,"d":4}}`, `{"a":{"b":1,"c":3,"d":4}}`},
		{"nested null removes", `{"a":{"b":1,"c":2}}`, `{"a":{"b":null}}`, `{"a":{"c":2}}`},
		{"array replaced whole", `{"a":[1,2,3]}`, `{"a":[4]}`, `{"a":[4]}`},
		{"object replaces scalar", `{"a":1}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
		{"non-object patch replaces record", `{"a":1}`, `[1,2]`, `[1,2]`},
		{"object patch on scalar record", `"text"`, `{"a":1}`, `{"a":1}`},
		{"empty patch keeps record", `{"a":1}`, `{}`, `{"a":1}`},
		{"numbers keep their text", `{"a":1.50}`, `{"b":12345678901234567890,"c":1e2}`, `{"a":1.50,"b":12345678901234567890,"c":1e2}`},
		{"patch with whitespace", `{"a":1}`, "{ \"b\" :\n true }", `{"a":1,"b":true}`},
	}
	for i, tt := range tests {
		id := fmt.Sprintf("r%d", i)
		before := put(t, c, id, tt.target)
		got, err := c.Patch(t.Context(), id, json.RawMessage(tt.patch))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		assertJSONEqual(t, tt.name, got.Value, tt.want)
		if got.Version != before.Version+1 {
			t.Errorf("%s: version %d, want %d", tt.name, got.Version, before.Version+1)
		}
		stored, err := c.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		assertJSONEqual(t, tt.name+" (stored)", stored.Value, tt.want)
		if string(stored.Value) != string(got.Value) {
			t.Errorf("%s: stored %s, Patch returned %s", tt.name, stored.Value, got.Value)
		}
	}
}

// assertJSONEqual compares JSON values ignoring object key order but not
// number text: numbers are decoded as json.Number.
func assertJSONEqual(t testing.TB, what string, got json.RawMessage, want string) {
	t.Helper()
	norm := func(b []byte) string {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "invalid JSON " + string(b)
		}
		out, _ := json.Marshal(v) // sorts object keys
		return string(out)
	}
	if norm(got) != norm([]byte(want)) {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

// TestPatchConcurrentWriters has N goroutines patch different fields of one
// record at once, without IfVersion: Patch must retry on the conflicts the
// others cause, so every field ends up in the record and every patch made
// exactly one commit.
func TestPatchConcurrentWriters(t *testing.T) {
	// At most maxPatchRetries (16) others may conflict with one patch; each
	// goroutine patches once, so every conflict is another's success and
	// no patch can run out of retries.
	const n = 16
	_, c := testHub(t)
	base := put(t, c, "doc", `{"keep":true}`)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([]viewsync.Record, n)
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = c.Patch(t.Context(), "doc", json.RawMessage(fmt.Sprintf(`{"f%d":%d}`, i, i)))
		})
	}
	close(start)
	wg.Wait()
	versions := map[uint64]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("patch f%d: %v", i, errs[i])
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(results[i].Value, &m); err != nil || m[fmt.Sprintf("f%d", i)] != float64(i) {
			t.Errorf("patch f%d returned %s, which lacks its own field", i, results[i].Value)
		}
		if versions[results[i].Version] {
			t.Errorf("two patches returned version %d", results[i].Version)
		}
		versions[results[i].Version] = true
	}
	final, err := c.Get(t.Context(), "doc")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(final.Value, &m); err != nil {
		t.Fatal(err)
	}
	if m["keep"] != true {
		t.Errorf("field written before the patches is lost: %s", final.Value)
	}
	for i := range n {
		if got := m[fmt.Sprintf("f%d", i)]; got != float64(i) {
			t.Errorf("update of f%d lost: final record %s", i, final.Value)
		}
	}
	if want := base.Version + n; final.Version != want || head(t, c).Version != want {
		t.Errorf("final version %d (head %d), want %d: one commit per patch", final.Version, head(t, c).Version, want)
	}
}

// countingStore counts the Head calls that reach the store, per collection.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	heads map[string]int
}

func (s *countingStore) Head(ctx context.Context, collection string) (protocol.Head, error) {
	s.mu.Lock()
	if s.heads == nil {
		s.heads = map[string]int{}
	}
	s.heads[collection]++
	s.mu.Unlock()
	return s.Store.Head(ctx, collection)
}

func (s *countingStore) headCalls(collection string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heads[collection]
}

// TestHeadFromMemory checks that Head reads the store once and then
// follows commits and drops from memory.
func TestHeadFromMemory(t *testing.T) {
	bs := openStore(t, boltstore.Options{})
	cs := &countingStore{Store: bs}
	h := newHub(t, cs)
	c := collection(t, h, "items")
	hd := head(t, c)
	if hd.Version != 0 || hd.Epoch == "" {
		t.Fatalf("head of empty collection = %+v", hd)
	}
	epoch := hd.Epoch
	for i := 1; i <= 5; i++ {
		cm := commit(t, c, viewsync.Put(fmt.Sprintf("r%d", i), []byte(`1`)))
		hd := head(t, c)
		if hd.Version != cm.Version || hd.Version != uint64(i) || hd.Epoch != epoch {
			t.Fatalf("head after commit %d = %+v, want %s:%d", i, hd, epoch, cm.Version)
		}
		if sh, err := bs.Head(t.Context(), "items"); err != nil || sh != hd {
			t.Fatalf("store head %+v (%v), hub head %+v", sh, err, hd)
		}
	}
	if n := cs.headCalls("items"); n != 1 {
		t.Errorf("store.Head called %d times for 6 Head calls and 5 commits, want 1: the head should come from memory", n)
	}
	// A failed commit does not move it.
	if _, err := c.Put(t.Context(), "r1", json.RawMessage(`2`), viewsync.IfAbsent()); !errors.Is(err, viewsync.ErrPrecondition) {
		t.Fatalf("put: %v", err)
	}
	if hd := head(t, c); hd.Version != 5 {
		t.Errorf("head after failed commit = %+v, want version 5", hd)
	}
	dropped, err := c.Drop(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if dropped.Epoch == epoch || dropped.Version != 0 {
		t.Errorf("Drop returned %+v, want version 0 in a new epoch", dropped)
	}
	if hd := head(t, c); hd != dropped {
		t.Errorf("head after drop = %+v, want %+v", hd, dropped)
	}
	if s := snapshot(t, c); len(s.Records) != 0 || s.Epoch != dropped.Epoch {
		t.Errorf("snapshot after drop = %+v", s)
	}
	// Once at first use, once more when the drop changed the epoch: never
	// per call.
	if n := cs.headCalls("items"); n != 2 {
		t.Errorf("store.Head called %d times, want 2 (first use, epoch change): the head should come from memory", n)
	}
}

// waitResult is what a Wait in a goroutine returned.
type waitResult struct {
	head viewsync.Head
	err  error
}

// goWait runs c.Wait(ctx, cur) in a goroutine and returns its result channel.
func goWait(ctx context.Context, c *viewsync.Collection, cur viewsync.Cursor) <-chan waitResult {
	ch := make(chan waitResult, 1)
	go func() {
		hd, err := c.Wait(ctx, cur)
		ch <- waitResult{hd, err}
	}()
	return ch
}

// waitersBlocked polls the goroutine dump until at least n goroutines are
// blocked in Collection.Wait, so that a test acts on waiters that are
// really waiting rather than about to.
func waitersBlocked(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	buf := make([]byte, 1<<20)
	for {
		m := runtime.Stack(buf, true)
		if m == len(buf) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		blocked := 0
		for _, g := range strings.Split(string(buf[:m]), "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, "viewsync.(*Collection).Wait(") {
				blocked++
			}
		}
		if blocked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines blocked in Wait, want %d", blocked, n)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}

func receive(t testing.TB, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("Wait never returned")
		return waitResult{}
	}
}

func TestWait(t *testing.T) {
	t.Run("cursor behind returns at once", func(t *testing.T) {
		_, c := testHub(t)
		put(t, c, "a", `1`)
		put(t, c, "a", `2`)
		hd := head(t, c)
		for _, cur := range []viewsync.Cursor{{Epoch: hd.Epoch, Version: 1}, {Version: 0}, {Version: 1}} {
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			got, err := c.Wait(ctx, cur)
			cancel()
			if err != nil || got != hd {
				t.Errorf("Wait(%v) = %+v, %v; want %+v at once", cur, got, err, hd)
			}
		}
	})

	t.Run("blocks until a commit", func(t *testing.T) {
		_, c := testHub(t)
		put(t, c, "a", `1`)
		hd := head(t, c)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		res := []<-chan waitResult{goWait(ctx, c, hd.Cursor()), goWait(ctx, c, viewsync.Cursor{Version: hd.Version})}
		waitersBlocked(t, 2)
		for _, ch := range res {
			select {
			case r := <-ch:
				t.Fatalf("Wait returned %+v, %v before any commit", r.head, r.err)
			default:
			}
		}
		cm := commit(t, c, viewsync.Put("b", []byte(`1`)))
		for _, ch := range res {
			r := receive(t, ch)
			if r.err != nil || r.head != (viewsync.Head{Epoch: hd.Epoch, Version: cm.Version}) {
				t.Errorf("Wait = %+v, %v; want %s:%d", r.head, r.err, hd.Epoch, cm.Version)
			}
		}
	})

	t.Run("returns on another epoch", func(t *testing.T) {
		_, c := testHub(t)
		put(t, c, "a", `1`)
		old := head(t, c)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		ch := goWait(ctx, c, old.Cursor())
		waitersBlocked(t, 1)
		dropped, err := c.Drop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		r := receive(t, ch)
		if r.err != nil || r.head != dropped || r.head.Epoch == old.Epoch {
			t.Errorf("Wait = %+v, %v; want the new epoch %+v", r.head, r.err, dropped)
		}
		// A cursor of the old epoch, even one ahead, returns at once.
		got, err := c.Wait(ctx, viewsync.Cursor{Epoch: old.Epoch, Version: 100})
		if err != nil || got != dropped {
			t.Errorf("Wait(old epoch) = %+v, %v; want %+v", got, err, dropped)
		}
	})

	t.Run("context timeout", func(t *testing.T) {
		_, c := testHub(t)
		put(t, c, "a", `1`)
		hd := head(t, c)
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		got, err := c.Wait(ctx, hd.Cursor())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %+v, %v; want context.DeadlineExceeded", got, err)
		}
		if got != hd {
			t.Errorf("Wait returned head %+v with its timeout, want the current %+v", got, hd)
		}
		if code := viewsync.ErrorCode(err); code != protocol.CodeTimeout {
			t.Errorf("ErrorCode = %q, want timeout", code)
		}
		// A cancelled context likewise.
		ctx, cancel = context.WithCancel(t.Context())
		ch := goWait(ctx, c, hd.Cursor())
		waitersBlocked(t, 1)
		cancel()
		if r := receive(t, ch); !errors.Is(r.err, context.Canceled) {
			t.Errorf("Wait after cancel = %v, want context.Canceled", r.err)
		}
	})

	t.Run("hub closed", func(t *testing.T) {
		h, c := testHub(t)
		put(t, c, "a", `1`)
		hd := head(t, c)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		other := collection(t, h, "other")
		chs := []<-chan waitResult{goWait(ctx, c, hd.Cursor()), goWait(ctx, other, viewsync.Cursor{})}
		waitersBlocked(t, 2)
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ch := range chs {
			if r := receive(t, ch); !errors.Is(r.err, viewsync.ErrClosed) {
				t.Errorf("blocked Wait after Close = %+v, %v; want ErrClosed", r.head, r.err)
			}
		}
		if _, err := c.Wait(ctx, hd.Cursor()); !errors.Is(err, viewsync.ErrClosed) {
			t.Errorf("Wait after Close = %v, want ErrClosed", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		// Writes go on: Close stops waiting, not the store.
		if _, err := c.Put(ctx, "b", json.RawMessage(`1`)); err != nil {
			t.Errorf("put after hub Close: %v", err)
		}
	})
}

// fakeClock is a store clock the test moves by hand.
type fakeClock struct{ nanos atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.nanos.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.nanos.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.nanos.Add(int64(d)) }
func (c *fakeClock) config(retain int) store.Config {
	return store.Config{RetainCommits: retain, RetainTombstones: time.Hour, Now: c.Now}
}

// TestChanges covers the three answers of Changes: the commits after a
// cursor, a compacted catch-up once the log is trimmed past it, and a reset
// when even that is impossible.
func TestChanges(t *testing.T) {
	clock := newFakeClock()
	h := newHub(t, openStore(t, boltstore.Options{Config: clock.config(5)}))
	c := collection(t, h, "items")
	ctx := t.Context()

	var snaps []viewsync.Snapshot // snaps[v] is the collection at version v
	var commits []viewsync.Commit // commits[v-1] is commit v
	record := func(cm viewsync.Commit) {
		commits = append(commits, cm)
		snaps = append(snaps, snapshot(t, c))
	}
	snaps = append(snaps, snapshot(t, c))
	epoch := snaps[0].Epoch
	record(commit(t, c, viewsync.Put("a", []byte(`1`)), viewsync.Put("b", []byte(`1`)), viewsync.Put("c", []byte(`1`))))
	record(commit(t, c, viewsync.Put("d", []byte(`2`))))
	record(commit(t, c, viewsync.Delete("b")))
	for i := 4; i <= 12; i++ {
		record(commit(t, c, viewsync.Put("d", fmt.Appendf(nil, "%d", i))))
	}
	// The log now holds commits 8..12.

	t.Run("commits", func(t *testing.T) {
		tests := []struct {
			cur        viewsync.Cursor
			limit      int
			from, upto uint64 // the commits expected, from..upto
		}{
			{viewsync.Cursor{Epoch: epoch, Version: 7}, 0, 8, 12},
			{viewsync.Cursor{Version: 7}, 0, 8, 12},
			{viewsync.Cursor{Epoch: epoch, Version: 9}, 2, 10, 11},
			{viewsync.Cursor{Epoch: epoch, Version: 11}, 5, 12, 12},
			{viewsync.Cursor{Epoch: epoch, Version: 12}, 0, 13, 12}, // at the head: none
		}
		for _, tt := range tests {
			ch, err := c.Changes(ctx, tt.cur, viewsync.Page{Commits: tt.limit})
			if err != nil {
				t.Fatalf("Changes(%v): %v", tt.cur, err)
			}
			if ch.Kind != viewsync.KindCommits || ch.Commits == nil || ch.CatchUp != nil || ch.Reset != nil {
				t.Fatalf("Changes(%v) kind %v, want commits only", tt.cur, ch.Kind)
			}
			if ch.Commits.Epoch != epoch || ch.Commits.Version != 12 {
				t.Errorf("Changes(%v) at %s:%d, want %s:12", tt.cur, ch.Commits.Epoch, ch.Commits.Version, epoch)
			}
			got := ch.Commits.Commits
			if want := int(tt.upto+1) - int(tt.from); len(got) != want {
				t.Fatalf("Changes(%v, %d) returned %d commits, want %d", tt.cur, tt.limit, len(got), want)
			}
			for i, cm := range got {
				want := commits[tt.from+uint64(i)-1]
				if cm.Version != want.Version || !cm.At.Equal(want.At) || !opsEqual(cm.Ops, want.Ops) {
					t.Errorf("Changes(%v) commit %d = %+v, want %+v", tt.cur, i, cm, want)
				}
			}
			if hd := ch.Head(); hd.Epoch != epoch || hd.Version != max(tt.upto, tt.cur.Version) {
				t.Errorf("Changes(%v).Head() = %+v, want %s:%d", tt.cur, hd, epoch, max(tt.upto, tt.cur.Version))
			}
		}
	})

	t.Run("catch-up", func(t *testing.T) {
		for _, after := range []uint64{0, 1, 2, 3, 6} {
			for _, e := range []string{epoch, ""} {
				cur := viewsync.Cursor{Epoch: e, Version: after}
				ch, err := c.Changes(ctx, cur, viewsync.Page{})
				if err != nil {
					t.Fatalf("Changes(%v): %v", cur, err)
				}
				if ch.Kind != viewsync.KindCatchUp || ch.CatchUp == nil || ch.Commits != nil || ch.Reset != nil {
					t.Fatalf("Changes(%v) kind %v, want a catch-up", cur, ch.Kind)
				}
				cu := ch.CatchUp
				if !cu.Compacted || cu.Epoch != epoch || cu.Version != 12 || cu.Collection != "items" || ch.Head() != (viewsync.Head{Epoch: epoch, Version: 12}) {
					t.Errorf("catch-up after %d = %+v", after, cu)
				}
				for _, r := range cu.Records {
					if r.Version <= after {
						t.Errorf("catch-up after %d holds %s@%d, which did not change since", after, r.ID, r.Version)
					}
				}
				got := stateOf(snaps[after].Records)
				got.applyCatchUp(cu)
				if d := got.diff(stateOf(snaps[12].Records)); d != "" {
					t.Errorf("snapshot at %d + catch-up != snapshot at 12: %s", after, d)
				}
			}
		}
		// After 3, only d changed and nothing was deleted: the catch-up is
		// what changed, not the collection.
		ch, _ := c.Changes(ctx, viewsync.Cursor{Epoch: epoch, Version: 3}, viewsync.Page{})
		if cu := ch.CatchUp; cu == nil || len(cu.Records) != 1 || cu.Records[0].ID != "d" || len(cu.Deleted) != 0 {
			t.Errorf("catch-up after 3 = %+v, want only d", cu)
		}
		ch, _ = c.Changes(ctx, viewsync.Cursor{Epoch: epoch, Version: 2}, viewsync.Page{})
		if cu := ch.CatchUp; cu == nil || !slices.Equal(cu.Deleted, []string{"b"}) {
			t.Errorf("catch-up after 2 = %+v, want b deleted", cu)
		}
	})

	t.Run("reset", func(t *testing.T) {
		tests := []struct {
			name string
			cur  viewsync.Cursor
		}{
			{"other epoch in the log", viewsync.Cursor{Epoch: "0123456789abcdef", Version: 10}},
			{"other epoch behind the log", viewsync.Cursor{Epoch: "0123456789abcdef", Version: 2}},
			{"other epoch at zero", viewsync.Cursor{Epoch: "0123456789abcdef"}},
			{"ahead of the head", viewsync.Cursor{Epoch: epoch, Version: 13}},
			{"far ahead, no epoch", viewsync.Cursor{Version: 1 << 40}},
		}
		for _, tt := range tests {
			ch, err := c.Changes(ctx, tt.cur, viewsync.Page{})
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			checkReset(t, tt.name, ch, snaps[12])
		}
	})

	t.Run("tombstones past the horizon", func(t *testing.T) {
		// Deletion of b at version 3 is within the horizon: a catch-up
		// after 2 can still tell it.
		ch, err := c.Changes(ctx, viewsync.Cursor{Epoch: epoch, Version: 2}, viewsync.Page{})
		if err != nil || ch.Kind != viewsync.KindCatchUp {
			t.Fatalf("Changes after 2 = %v, %v; want a catch-up", ch.Kind, err)
		}
		// Two hours later a commit trims that tombstone: whoever has not
		// seen the deletion can no longer be told and must reset.
		clock.Advance(2 * time.Hour)
		cm := commit(t, c, viewsync.Put("e", []byte(`13`)))
		now := snapshot(t, c)
		for _, after := range []uint64{0, 1, 2} {
			ch, err := c.Changes(ctx, viewsync.Cursor{Epoch: epoch, Version: after}, viewsync.Page{})
			if err != nil {
				t.Fatal(err)
			}
			checkReset(t, fmt.Sprintf("after %d, deletion forgotten", after), ch, now)
		}
		// A client that saw the deletion still gets a catch-up.
		ch, err = c.Changes(ctx, viewsync.Cursor{Epoch: epoch, Version: 3}, viewsync.Page{})
		if err != nil || ch.Kind != viewsync.KindCatchUp {
			t.Fatalf("Changes after 3 = %v, %v; want a catch-up", ch.Kind, err)
		}
		got := stateOf(snaps[3].Records)
		got.applyCatchUp(ch.CatchUp)
		if d := got.diff(stateOf(now.Records)); d != "" || ch.CatchUp.Version != cm.Version {
			t.Errorf("snapshot at 3 + catch-up: %s (version %d)", d, ch.CatchUp.Version)
		}
	})

	t.Run("after drop", func(t *testing.T) {
		dropped, err := c.Drop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := c.Changes(ctx, viewsync.Cursor{Epoch: epoch, Version: 12}, viewsync.Page{})
		if err != nil {
			t.Fatal(err)
		}
		checkReset(t, "old epoch after drop", ch, viewsync.Snapshot{Epoch: dropped.Epoch})
		ch, err = c.Changes(ctx, dropped.Cursor(), viewsync.Page{})
		if err != nil || ch.Kind != viewsync.KindCommits || len(ch.Commits.Commits) != 0 {
			t.Errorf("Changes at the new head = %+v, %v; want no commits", ch, err)
		}
	})
}

// checkReset fails the test unless ch is a reset to exactly want.
func checkReset(t testing.TB, what string, ch viewsync.Changes, want viewsync.Snapshot) {
	t.Helper()
	if ch.Kind != viewsync.KindReset || ch.Reset == nil || ch.Commits != nil || ch.CatchUp != nil {
		t.Errorf("%s: kind %v, want reset", what, ch.Kind)
		return
	}
	r := ch.Reset
	if !r.Reset || r.Epoch != want.Epoch || r.Version != want.Version || r.Collection == "" {
		t.Errorf("%s: reset at %s:%d (reset=%v), want %s:%d", what, r.Epoch, r.Version, r.Reset, want.Epoch, want.Version)
	}
	if d := stateOf(r.Records).diff(stateOf(want.Records)); d != "" {
		t.Errorf("%s: reset records: %s", what, d)
	}
	if ch.Head() != (viewsync.Head{Epoch: want.Epoch, Version: want.Version}) {
		t.Errorf("%s: Head() = %+v", what, ch.Head())
	}
}

// TestMaxCachedCollections keeps far more collections busy than the hub
// caches heads for: heads must stay right, and a waiter whose collection's
// head was forgotten must still be woken by the next commit to it.
func TestMaxCachedCollections(t *testing.T) {
	bs := openStore(t, boltstore.Options{})
	cs := &countingStore{Store: bs}
	h := newHub(t, cs, viewsync.WithMaxCachedCollections(4))
	ctx := t.Context()
	const n = 24
	colls := make([]*viewsync.Collection, n)
	want := make([]uint64, n)
	for i := range colls {
		colls[i] = collection(t, h, fmt.Sprintf("c%02d", i))
	}
	// Interleave commits and head reads over all collections, so that
	// entries are evicted and reloaded all the time.
	for round := range 3 {
		for i, c := range colls {
			if (i+round)%3 != 0 {
				continue
			}
			cm := commit(t, c, viewsync.Put("r", fmt.Appendf(nil, "%d", round)))
			want[i] = cm.Version
		}
		for i, c := range colls {
			if hd := head(t, c); hd.Version != want[i] {
				t.Fatalf("round %d: head of %s = %d, want %d", round, c.Name(), hd.Version, want[i])
			}
		}
	}

	// A waiter on w, then enough traffic on other collections that w's
	// head is forgotten (seen as the waiter loading it from the store
	// again), then a commit to w: the waiter must get it.
	w := collection(t, h, "w")
	put(t, w, "r", `0`)
	hd := head(t, w)
	loads := cs.headCalls("w")
	wctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	ch := goWait(wctx, w, hd.Cursor())
	waitersBlocked(t, 1)
	for i := 0; cs.headCalls("w") == loads; i++ {
		if i == 10_000 {
			t.Fatal("w's head was never evicted")
		}
		head(t, collection(t, h, fmt.Sprintf("e%d", i)))
	}
	waitersBlocked(t, 1) // it waits again, on the reloaded head
	select {
	case r := <-ch:
		t.Fatalf("waiter returned %+v, %v on eviction", r.head, r.err)
	default:
	}
	cm := commit(t, w, viewsync.Put("r", []byte(`1`)))
	if r := receive(t, ch); r.err != nil || r.head.Version != cm.Version {
		t.Errorf("waiter on evicted collection: %+v, %v; want version %d", r.head, r.err, cm.Version)
	}
	for i, c := range colls {
		if hd := head(t, c); hd.Version != want[i] {
			t.Errorf("head of %s = %d, want %d", c.Name(), hd.Version, want[i])
		}
	}
}

// slowHeadStore answers Head after a delay, like a store over a network.
type slowHeadStore struct{ store.Store }

func (s slowHeadStore) Head(ctx context.Context, collection string) (protocol.Head, error) {
	time.Sleep(100 * time.Microsecond)
	return s.Store.Head(ctx, collection)
}

// TestEvictionKeepsWakeups races evictions against waiters and commits:
// with room for two heads and sixteen busy collections, heads are evicted
// constantly while waiters load them and commits advance them. Every
// waiter must be woken by the commit that follows its cursor.
func TestEvictionKeepsWakeups(t *testing.T) {
	// NoSync: this test is about the hub's in-memory heads, and it needs
	// many commits. Head answers take a while, as over a network (the
	// JetStream store), which widens the windows in which a head is loaded
	// while it is evicted.
	bs := openStore(t, boltstore.Options{NoSync: true})
	h := newHub(t, slowHeadStore{bs}, viewsync.WithMaxCachedCollections(2))
	const (
		ncoll  = 16
		rounds = 100
	)
	colls := make([]*viewsync.Collection, ncoll)
	for i := range colls {
		colls[i] = collection(t, h, fmt.Sprintf("c%02d", i))
	}
	stop := make(chan struct{})
	var churn sync.WaitGroup
	// Churn: read heads of the waited-on collections and of many others,
	// forcing evictions.
	for g := range 4 {
		churn.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Alternate between the waited-on collections and others.
				c := colls[(i+g)%ncoll]
				if i%2 == 1 {
					var err error
					if c, err = h.Collection(fmt.Sprintf("x%d-%d", g, i%64)); err != nil {
						t.Error(err)
						return
					}
				}
				if _, err := c.Head(t.Context()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer func() {
		close(stop)
		churn.Wait()
	}()
	for round := range rounds {
		var wg sync.WaitGroup
		for _, c := range colls {
			wg.Go(func() {
				hd, err := c.Head(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
				defer cancel()
				ch := goWait(ctx, c, hd.Cursor())
				cm, err := c.Commit(t.Context(), []viewsync.Op{viewsync.Put("r", fmt.Appendf(nil, "%d", round))}, nil)
				if err != nil {
					t.Error(err)
					return
				}
				r := <-ch
				if r.err != nil || r.head.Version < cm.Version {
					t.Errorf("round %d: waiter on %s at %d: %+v, %v; want woken by commit %d", round, c.Name(), hd.Version, r.head, r.err, cm.Version)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}

// TestCommitBytesLimit: a commit whose ops together (protocol.CommitSize)
// are over MaxCommitBytes is refused as too large and changes nothing, as
// many ops as the op limit allows notwithstanding.
func TestCommitBytesLimit(t *testing.T) {
	one := []viewsync.Op{viewsync.Put("12345678", []byte(`"abcdefghijklmn"`))}
	limitBytes := protocol.CommitSize(viewsync.Commit{Ops: one})
	_, c := testHub(t, viewsync.WithLimits(viewsync.Limits{MaxCommitBytes: limitBytes}))
	ctx := t.Context()
	if _, err := c.Commit(ctx, one, nil); err != nil {
		t.Fatalf("commit at the limit: %v", err)
	}
	before := head(t, c)
	two := append(one, viewsync.Put("22345678", []byte(`1`)))
	if _, err := c.Commit(ctx, two, nil); !errors.Is(err, viewsync.ErrTooLarge) || viewsync.ErrorCode(err) != protocol.CodeTooLarge {
		t.Fatalf("commit over the limit: %v, want ErrTooLarge", err)
	}
	if after := head(t, c); after != before {
		t.Fatalf("a refused commit moved the head from %v to %v", before, after)
	}
}
