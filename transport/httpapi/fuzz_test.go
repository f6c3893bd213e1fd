package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// wantBadRequest fails unless err maps to the contract's bad_request.
func wantBadRequest(t *testing.T, what string, err error) {
	t.Helper()
	if code := viewsync.ErrorCode(err); code != protocol.CodeBadRequest {
		t.Fatalf("%s: error %v maps to %q, want bad_request", what, err, code)
	}
}

// FuzzParseChangesQuery feeds parseChangesQuery every query string and
// checks that what it accepts is within bounds and what it refuses is a
// bad request.
func FuzzParseChangesQuery(f *testing.F) {
	for _, s := range []string{
		"", "after=0", "after=3&epoch=E1", "after=3&epoch=", "after=-1", "after=abc",
		"after=99999999999999999999999", "after=18446744073709551615", "after=1&after=2",
		"epoch=a:b", "epoch=" + strings.Repeat("e", 65), "wait=25s", "wait=25", "wait=60s",
		"wait=61s", "wait=forever", "wait=-1", "wait=1h", "wait=0.5s", "wait=3601",
		"wait=9999999999h", "limit=0", "limit=10", "limit=-1", "limit=1e3",
		"after=7&epoch=x&wait=200ms&limit=3&cb=1", "after=%2B1", "after=1;epoch=x", "%zz=1",
		"after=%zz", "after=1&x=%", "wait=1s&wait=1s", "cb=1&cb=2", "limit=1&limit=2", "client=a&client=a",
	} {
		f.Add(s, int64(DefaultMaxWait))
	}
	f.Add("wait=2s", int64(time.Second))
	f.Fuzz(func(t *testing.T, s string, maxWait int64) {
		if maxWait <= 0 {
			maxWait = int64(DefaultMaxWait)
		}
		cq, err := parseChangesQuery(s, time.Duration(maxWait))
		q, qerr := url.ParseQuery(s)
		if err != nil {
			wantBadRequest(t, "parseChangesQuery("+s+")", err)
			return
		}
		if qerr != nil {
			t.Fatalf("%q: accepted a query that does not parse: %v", s, qerr)
		}
		for _, name := range changesParams {
			if len(q[name]) > 1 {
				t.Fatalf("%q: accepted %s given %d times", s, name, len(q[name]))
			}
		}
		if cq.wait < 0 || cq.wait > time.Duration(maxWait) {
			t.Fatalf("%q: wait %v outside [0, %v]", s, cq.wait, time.Duration(maxWait))
		}
		if cq.limit < 0 {
			t.Fatalf("%q: negative limit %d", s, cq.limit)
		}
		if err := protocol.ValidateEpoch(cq.cursor.Epoch); err != nil {
			t.Fatalf("%q: accepted epoch %q: %v", s, cq.cursor.Epoch, err)
		}
		if cq.epochGiven != (cq.cursor.Epoch != "") {
			t.Fatalf("%q: epochGiven %v with epoch %q", s, cq.epochGiven, cq.cursor.Epoch)
		}
		if vs, ok := q["after"]; ok {
			v, err := protocol.ParseVersion(vs[0])
			if len(vs) != 1 || err != nil || v != cq.cursor.Version {
				t.Fatalf("%q: accepted after=%q as %d", s, vs, cq.cursor.Version)
			}
		} else if cq.cursor.Version != 0 {
			t.Fatalf("%q: no after, but version %d", s, cq.cursor.Version)
		}
		for _, ps := range []int{1, 7, 10, DefaultPageSize} {
			n := pageLimit(cq.cursor.Version, ps, cq.limit)
			if n < 1 || n > ps || (cq.limit > 0 && n > cq.limit) {
				t.Fatalf("%q: pageLimit(%d, %d, %d) = %d", s, cq.cursor.Version, ps, cq.limit, n)
			}
			// Unless the limit cut it, the page ends on a multiple of ps
			// (computed without overflowing near the largest version).
			if (cq.limit == 0 || n < cq.limit) && (cq.cursor.Version%uint64(ps)+uint64(n))%uint64(ps) != 0 {
				t.Fatalf("%q: page of %d after %d does not end on a multiple of %d", s, n, cq.cursor.Version, ps)
			}
		}
	})
}

// FuzzDecodeCommitRequest checks that decodeCommitRequest refuses with a
// bad request whatever it cannot take, and that what it takes is valid
// JSON that survives a round trip through its own encoding.
func FuzzDecodeCommitRequest(f *testing.F) {
	for _, s := range []string{
		`{"ops":[{"op":"put","id":"a","value":{"n":1}}]}`,
		`{"ops":[{"op":"delete","id":"a"}],"if":{"a":3,"b":0}}`,
		`{"ops":[]}`, `{}`, `null`, `[]`, `{"ops":null}`, `{"ops":[1]}`,
		`{"ops":[{"op":"put","id":"a","value":1}]} {}`, `{"ops":[{"op":"put","id":"a","value":1}]}x`,
		`{"ops":[{"op":"put","id":"a","value":1,"ttl":5}]}`, `{"ops":[],"extra":1}`,
		`{"ops":[{"op":"put","id":"a","value": [ 1 , "<&>" ] }]}`, `{"ops":[],"if":{"a":-1}}`,
		"{\"ops\":[{\"op\":\"put\",\"id\":\"\xff\",\"value\":1}]}", `{"ops":[{"op":"put","id":"a","value":"\ud800"}]}`,
		` {"ops":[]} `, `{"ops":[{"op":"put","id":"a","value":null}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			// readBody refuses these before they reach the decoder.
			return
		}
		req, err := decodeCommitRequest(body)
		if err != nil {
			wantBadRequest(t, "decodeCommitRequest", err)
			return
		}
		if req.Ops == nil {
			t.Fatalf("%q: accepted without ops", body)
		}
		if !json.Valid(body) {
			t.Fatalf("%q: accepted a body that is not valid JSON", body)
		}
		enc, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("%q: re-encoding %+v: %v", body, req, err)
		}
		again, err := decodeCommitRequest(enc)
		if err != nil {
			t.Fatalf("%q: its re-encoding %q is refused: %v", body, enc, err)
		}
		if len(again.Ops) != len(req.Ops) || !reflect.DeepEqual(again.If, req.If) {
			t.Fatalf("%q: round trip changed the request: %+v then %+v", body, req, again)
		}
		for i := range req.Ops {
			a, b := req.Ops[i], again.Ops[i]
			if a.Op != b.Op || a.ID != b.ID || (len(a.Value) == 0) != (len(b.Value) == 0) {
				t.Fatalf("%q: op %d round trips from %+v to %+v", body, i, a, b)
			}
			if len(a.Value) > 0 && !sameValue(a.Value, b.Value) {
				t.Fatalf("%q: op %d value %s round trips to %s", body, i, a.Value, b.Value)
			}
		}
	})
}

// sameValue reports whether two JSON values are equal, numbers compared as
// text.
func sameValue(a, b []byte) bool {
	decode := func(b []byte) (any, bool) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		return v, dec.Decode(&v) == nil
	}
	x, ok1 := decode(a)
	y, ok2 := decode(b)
	return ok1 && ok2 && reflect.DeepEqual(x, y)
}

// FuzzWritePreconditions checks how If-Match and If-None-Match on a write
// are read: never both, If-None-Match only "*", If-Match "*" or one quoted
// positive version; everything else a bad request.
func FuzzWritePreconditions(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""}, {`"3"`, ""}, {"*", ""}, {"", "*"}, {`"3"`, "*"}, {"", `"3"`}, {"12", ""},
		{`"abc"`, ""}, {`"0"`, ""}, {`W/"3"`, ""}, {` "3" `, ""}, {`"1", "2"`, ""}, {" ", " * "},
		{`"18446744073709551615"`, ""}, {`"18446744073709551616"`, ""}, {`""`, ""}, {`"`, ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, ifMatch, ifNoneMatch string) {
		opts, mustExist, err := writePreconditions(ifMatch, ifNoneMatch)
		im, inm := strings.TrimSpace(ifMatch), strings.TrimSpace(ifNoneMatch)
		if err != nil {
			wantBadRequest(t, "writePreconditions", err)
			if im != "" && inm != "" {
				return
			}
			if inm != "" && inm == "*" {
				t.Fatalf("If-None-Match %q refused: %v", ifNoneMatch, err)
			}
			if im == "*" {
				t.Fatalf("If-Match %q refused: %v", ifMatch, err)
			}
			if im != "" {
				if _, perr := parseVersionETag(im); perr == nil {
					t.Fatalf("If-Match %q is a version tag, yet refused: %v", ifMatch, err)
				}
			}
			return
		}
		switch {
		case im != "" && inm != "":
			t.Fatalf("If-Match %q with If-None-Match %q accepted", ifMatch, ifNoneMatch)
		case inm != "":
			if inm != "*" || len(opts) != 1 || mustExist {
				t.Fatalf("If-None-Match %q: %d options, mustExist %v", ifNoneMatch, len(opts), mustExist)
			}
		case im == "*":
			if len(opts) != 0 || !mustExist {
				t.Fatalf("If-Match *: %d options, mustExist %v", len(opts), mustExist)
			}
		case im != "":
			if _, perr := parseVersionETag(im); perr != nil || len(opts) != 1 || mustExist {
				t.Fatalf("If-Match %q accepted (%v): %d options, mustExist %v", ifMatch, perr, len(opts), mustExist)
			}
		default:
			if len(opts) != 0 || mustExist {
				t.Fatalf("no precondition gave %d options, mustExist %v", len(opts), mustExist)
			}
		}
	})
}

// FuzzParseVersionETag checks that a record entity tag parses only when it
// is the quoted text of a positive version, and round-trips.
func FuzzParseVersionETag(f *testing.F) {
	for _, s := range []string{
		`"1"`, `"12"`, `W/"3"`, `"0"`, `""`, `"`, `12`, `"abc"`, `"-1"`, `"+1"`, `" 1"`, `"007"`,
		`"18446744073709551615"`, `"18446744073709551616"`, `"E:1"`, `W/W/"1"`, `"1"x`, `x"1"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseVersionETag(s)
		if err != nil {
			wantBadRequest(t, "parseVersionETag("+s+")", err)
			return
		}
		if v == 0 {
			t.Fatalf("%q parsed as version 0", s)
		}
		inner, ok := strings.CutPrefix(s, "W/")
		if !ok {
			inner = s
		}
		if len(inner) < 3 || inner[0] != '"' || inner[len(inner)-1] != '"' {
			t.Fatalf("%q parsed as %d but is not a quoted tag", s, v)
		}
		if pv, err := protocol.ParseVersion(inner[1 : len(inner)-1]); err != nil || pv != v {
			t.Fatalf("%q parsed as %d, its text as %d, %v", s, v, pv, err)
		}
		if back, err := parseVersionETag(versionETag(v)); err != nil || back != v {
			t.Fatalf("versionETag(%d) = %s parses to %d, %v", v, versionETag(v), back, err)
		}
	})
}

// FuzzETagMatches checks If-None-Match matching: an entity tag matches
// itself, weak or not, alone or in a list, and "*"; and nothing matches
// that names neither the tag nor "*".
func FuzzETagMatches(f *testing.F) {
	for _, s := range []struct {
		header, epoch string
		version       uint64
	}{
		{`"E:3"`, "E", 3}, {`W/"E:3"`, "E", 3}, {`"x", "E:3"`, "E", 3}, {"*", "E", 3},
		{`"E:2"`, "E", 3}, {"", "E", 3}, {`E:3`, "E", 3}, {`"3"`, "", 3}, {`,,,`, "E", 0},
		{` W/"E:3" ,`, "E", 3}, {`"E:3`, "E", 3},
	} {
		f.Add(s.header, s.epoch, s.version)
	}
	f.Fuzz(func(t *testing.T, header, epoch string, version uint64) {
		var etag string
		if protocol.ValidateEpoch(epoch) == nil && epoch != "" {
			etag = headETag(protocol.Head{Epoch: epoch, Version: version})
		} else {
			etag = versionETag(version)
		}
		got := etagMatches(header, etag)
		if got && !strings.Contains(header, "*") && !strings.Contains(header, etag) {
			t.Fatalf("etagMatches(%q, %q) without the tag or *", header, etag)
		}
		if !etagMatches(etag, etag) || !etagMatches("W/"+etag, etag) || !etagMatches("*", etag) {
			t.Fatalf("%q does not match itself, weakly, or *", etag)
		}
		if etagMatches("", etag) {
			t.Fatalf("empty header matches %q", etag)
		}
		if !etagMatches(header+", "+etag, etag) || !etagMatches(etag+" ,"+header, etag) {
			t.Fatalf("%q not found in a list with %q", etag, header)
		}
		if got && (!etagMatches(header+",\"other\"", etag) || !etagMatches("\"other\","+header, etag)) {
			t.Fatalf("etagMatches(%q, %q) stops matching when the list grows", header, etag)
		}
		if strings.Contains(header, "*") || strings.Contains(header, etag) {
			return
		}
		if got {
			t.Fatalf("etagMatches(%q, %q) = true", header, etag)
		}
	})
}

// TestPageLimit pins the alignment of pages of changes.
func TestPageLimit(t *testing.T) {
	tests := []struct {
		after         uint64
		pageSize, lim int
		want          int
	}{
		{0, 10, 0, 10},
		{3, 10, 0, 7},
		{9, 10, 0, 1},
		{10, 10, 0, 10},
		{11, 10, 0, 9},
		{3, 10, 2, 2},
		{3, 10, 100, 7},
		{0, 1, 0, 1},
		{5, 1, 0, 1},
		{1<<64 - 1, 1000, 0, 1000 - int((1<<64-1)%1000)},
	}
	for _, tt := range tests {
		if got := pageLimit(tt.after, tt.pageSize, tt.lim); got != tt.want {
			t.Errorf("pageLimit(%d, %d, %d) = %d, want %d", tt.after, tt.pageSize, tt.lim, got, tt.want)
		}
	}
}

// TestParseChangesQuery covers the accepted forms of the query.
func TestParseChangesQuery(t *testing.T) {
	tests := []struct {
		query string
		want  changesQuery
	}{
		{"", changesQuery{}},
		{"after=5", changesQuery{cursor: protocol.Cursor{Version: 5}}},
		{"after=005&epoch=E", changesQuery{cursor: protocol.Cursor{Epoch: "E", Version: 5}, epochGiven: true}},
		{"epoch=", changesQuery{}},
		{"wait=25", changesQuery{wait: 25 * time.Second}},
		{"wait=25s", changesQuery{wait: 25 * time.Second}},
		{"wait=1m", changesQuery{wait: time.Minute}},
		{"wait=200ms", changesQuery{wait: 200 * time.Millisecond}},
		{"wait=0", changesQuery{}},
		{"wait=", changesQuery{}},
		{"limit=3", changesQuery{limit: 3}},
		{"limit=", changesQuery{}},
		{"unknown=1&after=2", changesQuery{cursor: protocol.Cursor{Version: 2}}},
		{"cb=1&cb=2&after=%32", changesQuery{cursor: protocol.Cursor{Version: 2}}},
	}
	for _, tt := range tests {
		got, err := parseChangesQuery(tt.query, DefaultMaxWait)
		if err != nil || got != tt.want {
			t.Errorf("parseChangesQuery(%q) = %+v, %v; want %+v", tt.query, got, err, tt.want)
		}
	}
	for _, tt := range []struct{ query, msg string }{
		{"wait=61s", "over the limit"},
		{"after=%zz", `invalid URL escape "%zz"`},
		{"after=1&cb=%zz", `invalid URL escape "%zz"`},
		{"after=1;epoch=E", "semicolon"},
		{"after=1&after=2", "after given 2 times"},
		{"epoch=E&epoch=E", "epoch given 2 times"},
		{"wait=1s&wait=2s", "wait given 2 times"},
		{"limit=1&limit=1", "limit given 2 times"},
		{"client=a&client=b", "client given 2 times"},
	} {
		_, err := parseChangesQuery(tt.query, DefaultMaxWait)
		if !errors.Is(err, viewsync.ErrInvalid) || !strings.Contains(fmt.Sprint(err), tt.msg) {
			t.Errorf("parseChangesQuery(%q) error %v, want ErrInvalid with %q", tt.query, err, tt.msg)
		}
		wantBadRequest(t, tt.query, err)
	}
}
