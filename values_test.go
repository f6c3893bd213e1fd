package viewsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
)

// nested returns v inside n arrays.
func nested(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// TestValueRules: every write path of the Go API (Commit, Put, Patch, and
// the writes of a call) refuses a value that breaks a value rule, with the
// error code the contract gives it and a message naming the rule or the
// limit, and changes nothing.
func TestValueRules(t *testing.T) {
	h, c := testHub(t, viewsync.WithLimits(viewsync.Limits{MaxValueDepth: 4, MaxValueBytes: 64}))
	ctx := t.Context()
	put(t, c, "a", `{"n":1}`)
	err := h.HandleCall("store", func(ctx context.Context, call *viewsync.Call) (any, error) {
		col, err := call.Collection("items")
		if err != nil {
			return nil, err
		}
		return col.Put(ctx, "fromcall", call.Arg)
	})
	if err != nil {
		t.Fatal(err)
	}
	type writer struct {
		name  string
		write func(v string) error
	}
	writers := []writer{
		{"Commit", func(v string) error {
			_, err := c.Commit(ctx, []viewsync.Op{viewsync.Put("x", []byte(`1`)), viewsync.Put("b", []byte(v))}, nil)
			return err
		}},
		{"Put", func(v string) error { _, err := c.Put(ctx, "b", json.RawMessage(v)); return err }},
		{"Patch", func(v string) error { _, err := c.Patch(ctx, "a", json.RawMessage(`{"m":`+v+`}`)); return err }},
		{"call", func(v string) error { _, err := h.Call(ctx, "store", json.RawMessage(v)); return err }},
	}
	for _, tt := range []struct {
		name, value string
		err         error
		code        protocol.Code
		msg         string
	}{
		{"nested too deep", nested(5, `1`), protocol.ErrTooDeep, protocol.CodeBadRequest, "more than 4 levels"},
		{"nested too deep in an object", `{"a":` + nested(4, `1`) + `}`, protocol.ErrTooDeep, protocol.CodeBadRequest, "more than 4 levels"},
		{"duplicate key", `{"k":1,"k":2}`, protocol.ErrBadValue, protocol.CodeBadRequest, `duplicate field "k"`},
		{"duplicate key after unescaping", `[{"k":1,"\u006b":2}]`, protocol.ErrBadValue, protocol.CodeBadRequest, `duplicate field "k"`},
		{"lone surrogate", `"\ud800"`, protocol.ErrBadValue, protocol.CodeBadRequest, "lone UTF-16 surrogate"},
		{"lone surrogate in a key", `{"\udfff":1}`, protocol.ErrBadValue, protocol.CodeBadRequest, "lone UTF-16 surrogate"},
		{"number out of range", `[1e400]`, protocol.ErrBadValue, protocol.CodeBadRequest, "out of the range of float64"},
		{"not JSON", `{"k":}`, protocol.ErrBadValue, protocol.CodeBadRequest, "not valid JSON"},
		{"too large", `"` + strings.Repeat("x", 70) + `"`, viewsync.ErrTooLarge, protocol.CodeTooLarge, "limit 64"},
	} {
		for _, w := range writers {
			if w.name == "call" && tt.err == viewsync.ErrTooLarge {
				continue // the arg of a call has no size limit of its own; the body's bounds it
			}
			t.Run(tt.name+"/"+w.name, func(t *testing.T) {
				before := head(t, c)
				err := w.write(tt.value)
				checkErr(t, w.name, err, tt.err, tt.code)
				if err != nil && !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("%s: error %q does not say %q", w.name, err, tt.msg)
				}
				if after := head(t, c); after != before {
					t.Errorf("%s: refused write moved the head %+v → %+v", w.name, before, after)
				}
			})
		}
	}
	// At the limits, every path writes.
	for _, w := range writers {
		v := nested(3, `1`) // 4 deep once Patch wraps it in {"m":…}
		if w.name != "Patch" {
			v = nested(4, `1`)
		}
		if err := w.write(v); err != nil {
			t.Errorf("%s of a value at the depth limit: %v", w.name, err)
		}
	}
}

// TestMaxValueDepthDefault: the default depth limit is 32, and a limit
// above protocol.MaxValueDepth is refused.
func TestMaxValueDepthDefault(t *testing.T) {
	h, c := testHub(t)
	if d := h.Limits().MaxValueDepth; d != 32 || viewsync.DefaultMaxValueDepth != 32 {
		t.Fatalf("MaxValueDepth = %d, want 32", d)
	}
	put(t, c, "a", nested(32, ``))
	if _, err := c.Put(t.Context(), "b", json.RawMessage(nested(33, ``))); !errors.Is(err, protocol.ErrTooDeep) || !strings.Contains(err.Error(), "more than 32 levels") {
		t.Fatalf("put 33 deep: %v", err)
	}
	// The value, ~10,000 deep, is refused as well.
	if _, err := c.Put(t.Context(), "b", json.RawMessage(nested(9999, ``))); !errors.Is(err, protocol.ErrTooDeep) {
		t.Fatalf("put 9,999 deep: %v", err)
	}
	if _, err := viewsync.New(openStore(t, boltstore.Options{}), viewsync.WithLimits(viewsync.Limits{MaxValueDepth: protocol.MaxValueDepth + 1})); err == nil {
		t.Fatal("a MaxValueDepth over protocol.MaxValueDepth was accepted")
	}
	if _, err := viewsync.New(openStore(t, boltstore.Options{}), viewsync.WithLimits(viewsync.Limits{MaxValueDepth: -1})); err == nil {
		t.Fatal("a negative MaxValueDepth was accepted")
	}
}

// TestPatchResultChecked: a patch that keeps the rules is refused when the
// value it makes does not, as when the stored value was written before the
// rules (here straight into the store): the merged value is checked as
// any other write.
func TestPatchResultChecked(t *testing.T) {
	st := openStore(t, boltstore.Options{})
	deep := `{"d":` + nested(40, `1`) + `}`
	if _, err := st.Apply(t.Context(), "items", []protocol.Op{{Op: protocol.OpPut, ID: "deep", Value: json.RawMessage(deep)}}, nil); err != nil {
		t.Fatal(err)
	}
	h := newHub(t, st)
	c := collection(t, h, "items")
	before := head(t, c)
	_, err := c.Patch(t.Context(), "deep", json.RawMessage(`{"x":1}`))
	checkErr(t, "patch onto a value too deep", err, protocol.ErrTooDeep, protocol.CodeBadRequest)
	if after := head(t, c); after != before {
		t.Fatalf("refused patch moved the head %+v → %+v", before, after)
	}
	// Replacing the too-deep part makes it valid again.
	if _, err := c.Patch(t.Context(), "deep", json.RawMessage(`{"d":null}`)); err != nil {
		t.Fatalf("patch removing the deep part: %v", err)
	}
}
