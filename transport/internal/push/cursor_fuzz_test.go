package push

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// FuzzCursorInput feeds ParseCursor every Last-Event-ID header and after
// and epoch query parameter, given or not. It must never panic; what it
// refuses must be a bad request, and what it accepts must be a valid cursor
// that reads back the same when written out again, as an event id and as a
// query.
func FuzzCursorInput(f *testing.F) {
	long := strings.Repeat("e", protocol.MaxEpochLen)
	for _, s := range []struct {
		lei                string
		hasAfter, hasEpoch bool
		after, epoch       string
	}{
		{"", false, false, "", ""},
		{"E1:7", false, false, "", ""},
		{":7", false, false, "", ""},
		{"7", false, false, "", ""},
		{"a:b:7", false, false, "", ""},
		{"E1:", false, false, "", ""},
		{"E1:-1", false, false, "", ""},
		{"E1:18446744073709551615", false, false, "", ""},
		{"E1:18446744073709551616", false, false, "", ""},
		{long + ":1", false, false, "", ""},
		{long + "x:1", false, false, "", ""},
		{"", true, true, "7", "E1"},
		{"", true, false, "7", ""},
		{"", true, true, "7", ""},
		{"", false, true, "", "E1"},
		{"", false, true, "", ""},
		{"", true, false, "", ""},
		{"", true, false, "007", ""},
		{"", true, false, "+1", ""},
		{"", true, false, " 1", ""},
		{"", true, true, "1", "é"},
		{"E2:3", true, true, "1", "E1"},
		{"E2:3", true, false, "x", ""},
	} {
		f.Add(s.lei, s.hasAfter, s.after, s.hasEpoch, s.epoch)
	}
	f.Fuzz(func(t *testing.T, lei string, hasAfter bool, after string, hasEpoch bool, epoch string) {
		q := url.Values{}
		if hasAfter {
			q.Set("after", after)
		}
		if hasEpoch {
			q.Set("epoch", epoch)
		}
		var hdr []string
		if lei != "" {
			hdr = []string{lei}
		}
		cur, err := ParseCursor(hdr, q.Encode())
		if err != nil {
			if cur != nil {
				t.Fatalf("error %v with cursor %+v", err, cur)
			}
			if !errors.Is(err, protocol.ErrBadCursor) || viewsync.ErrorCode(err) != protocol.CodeBadRequest {
				t.Fatalf("error %v is not a bad cursor / bad request", err)
			}
			return
		}
		if cur == nil {
			if lei != "" || hasAfter || epoch != "" && hasEpoch {
				t.Fatalf("no cursor from Last-Event-ID %q after %q (%v) epoch %q (%v)", lei, after, hasAfter, epoch, hasEpoch)
			}
			return
		}
		if err := protocol.ValidateEpoch(cur.Epoch); err != nil {
			t.Fatalf("accepted epoch %q: %v", cur.Epoch, err)
		}
		// The header wins when given; else the query is the cursor.
		if lei != "" {
			if want, err := protocol.ParseCursor(lei); err != nil || want != *cur {
				t.Fatalf("Last-Event-ID %q gave %+v, ParseCursor %+v (%v)", lei, *cur, want, err)
			}
		} else {
			v, err := protocol.ParseVersion(after)
			if !hasAfter || err != nil || cur.Version != v || cur.Epoch != epoch && hasEpoch || cur.Epoch != "" && !hasEpoch {
				t.Fatalf("after %q (%v) epoch %q (%v) gave %+v", after, hasAfter, epoch, hasEpoch, *cur)
			}
		}
		// Written out as an event id, it reads back the same.
		back, err := ParseCursor([]string{cur.String()}, "")
		if err != nil || back == nil || *back != *cur {
			t.Fatalf("id %q of %+v read back as %+v (%v)", cur.String(), *cur, back, err)
		}
		// Written out as a query, too.
		q = url.Values{"after": {strconv.FormatUint(cur.Version, 10)}, "epoch": {cur.Epoch}}
		back, err = ParseCursor(nil, q.Encode())
		if err != nil || back == nil || *back != *cur {
			t.Fatalf("query %q of %+v read back as %+v (%v)", q.Encode(), *cur, back, err)
		}
	})
}

// FuzzCursorQuery feeds ParseCursor raw query strings: one that does not
// parse, or gives after or epoch twice, is refused as a bad request even
// when Last-Event-ID would win; any other gives the cursor its parsed
// values give.
func FuzzCursorQuery(f *testing.F) {
	for _, s := range []string{
		"", "after=1", "after=1&epoch=E1", "after=%zz", "%zz", "after=1;epoch=E1", "after=1&after=1",
		"epoch=E&epoch=E&after=1", "after=%31&cb=%", "cb=1&cb=2&after=2", "after=1&epoch=%45%31",
	} {
		f.Add(s, "")
		f.Add(s, "E2:3")
	}
	f.Fuzz(func(t *testing.T, raw, lei string) {
		var hdr []string
		if lei != "" {
			hdr = []string{lei}
		}
		cur, err := ParseCursor(hdr, raw)
		q, qerr := url.ParseQuery(raw)
		if qerr != nil || len(q["after"]) > 1 || len(q["epoch"]) > 1 {
			if !errors.Is(err, protocol.ErrBadQuery) || viewsync.ErrorCode(err) != protocol.CodeBadRequest {
				t.Fatalf("query %q: %+v, %v; want a bad query", raw, cur, err)
			}
			return
		}
		want, werr := ParseCursor(hdr, q.Encode())
		if (err == nil) != (werr == nil) || (cur == nil) != (want == nil) || cur != nil && *cur != *want {
			t.Fatalf("query %q: %+v, %v; its parsed values give %+v, %v", raw, cur, err, want, werr)
		}
		if err != nil && viewsync.ErrorCode(err) != protocol.CodeBadRequest {
			t.Fatalf("query %q: error %v is not a bad request", raw, err)
		}
	})
}
