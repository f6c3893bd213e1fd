package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// checkCommitJSON fails the test unless the log encoding of the commit is
// valid JSON that decodes to exactly the commit, values byte for byte, and
// equals what encoding/json makes of it up to the HTML escaping that
// encoding/json applies inside values (and which would change them).
func checkCommitJSON(t *testing.T, version uint64, at time.Time, ops []Op) {
	t.Helper()
	at = at.UTC()
	in := Commit{Version: version, At: at, Ops: ops}
	opsJSON := AppendOps(nil, ops)
	got := AppendCommitOps(nil, version, at, opsJSON)
	if extra := len(got) - len(opsJSON); extra > CommitJSONOverhead {
		t.Fatalf("commit wrapper is %d bytes, CommitJSONOverhead says at most %d", extra, CommitJSONOverhead)
	}
	if whole := AppendCommit(nil, in); !bytes.Equal(whole, got) {
		t.Fatalf("AppendCommit gives\n%s\nAppendCommitOps gives\n%s", whole, got)
	}
	var out Commit
	if err := json.Unmarshal(got, &out); err != nil {
		t.Fatalf("log encoding %s does not decode: %v", got, err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("log encoding %s decodes to\n%+v, want\n%+v", got, out, in)
	}
	want, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var gotBuf bytes.Buffer
	json.HTMLEscape(&gotBuf, got)
	if !bytes.Equal(gotBuf.Bytes(), want) {
		t.Fatalf("log encoding\n got %s\nwant %s (after HTML escaping)", got, want)
	}
}

func TestCommitJSON(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("X", 7200))
	cases := []struct {
		name    string
		version uint64
		at      time.Time
		ops     []Op
	}{
		{"put", 1, at, []Op{{Op: OpPut, ID: "a", Value: json.RawMessage(`{"n":1,"s":"x y"}`)}}},
		{"delete", 18446744073709551615, at.Truncate(time.Second), []Op{{Op: OpDelete, ID: "b"}}},
		{"several", 42, at.Truncate(time.Millisecond), []Op{
			{Op: OpPut, ID: "x", Value: json.RawMessage(`[1,2,{"a":null}]`)},
			{Op: OpDelete, ID: "y"},
			{Op: OpPut, ID: "z", Value: json.RawMessage(`"<b>&amp;</b>"`)},
		}},
		{"escaped ids", 7, at, []Op{
			{Op: OpPut, ID: `quote"back\slash`, Value: json.RawMessage(`true`)},
			{Op: OpPut, ID: "<html>&", Value: json.RawMessage(`1`)},
			{Op: OpPut, ID: "héllo wörld ✓ 😀", Value: json.RawMessage(`1`)},
			{Op: OpDelete, ID: "line\u2028sep\u2029"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkCommitJSON(t, tc.version, tc.at, tc.ops)
		})
	}
}

// FuzzCommitJSON checks the log encoding against encoding/json for any id
// the store accepts and any compact value.
func FuzzCommitJSON(f *testing.F) {
	f.Add("a", []byte(`{"k":"v"}`), uint64(1), int64(0), false)
	f.Add("<&>\"\\", []byte(`"\u00e9<"`), uint64(99), int64(1_700_000_000_123_456_789), true)
	f.Add("é✓\u2028", []byte(`[1.5e3,-2]`), uint64(1<<63), int64(-1), false)
	f.Fuzz(func(t *testing.T, id string, value []byte, version uint64, nanos int64, isDelete bool) {
		op := Op{Op: OpPut, ID: id, Value: value}
		if isDelete {
			op = Op{Op: OpDelete, ID: id}
		}
		op, err := NormalizeOp(op, 0, 0)
		if err != nil {
			return
		}
		at := time.Unix(0, nanos)
		if y := at.UTC().Year(); y < 0 || y > 9999 {
			return
		}
		checkCommitJSON(t, version, at, []Op{op, op})
	})
}
