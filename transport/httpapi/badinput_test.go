package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// TestBadInput sends input the contract refuses and checks the exact error
// and that the store did not change.
func TestBadInput(t *testing.T) {
	const (
		maxBody  = 4096
		maxValue = 64
		maxOps   = 3
	)
	s := newTestServerWith(t, serverConfig{
		API:    &httpapi.Options{MaxBodyBytes: maxBody, MaxWait: time.Second},
		Limits: viewsync.Limits{MaxOpsPerCommit: maxOps, MaxValueBytes: maxValue},
	})
	s.put("c", "a", `{"n":1}`) // version 1
	s.put("c", "b", `"b"`)     // version 2
	s.put("d", "a", `1`)

	const (
		commits = "/v1/collections/c/commits"
		recA    = "/v1/collections/c/records/a"
		recB    = "/v1/collections/c/records/b"
		changes = "/v1/collections/c/changes"
		jsonCT  = "application/json"
		patchCT = "application/merge-patch+json"
	)
	put1 := `{"op":"put","id":"x","value":1}`
	ctJSON := []string{"Content-Type", jsonCT}
	ctPatch := []string{"Content-Type", patchCT}
	with := func(h []string, kv ...string) []string { return append(append([]string{}, h...), kv...) }

	longName := strings.Repeat("a", protocol.MaxCollectionLen+1)
	longID := strings.Repeat("i", protocol.MaxIDLen+1)
	bigString := `"` + strings.Repeat("v", maxValue) + `"` // maxValue+2 bytes
	tooDeep := nested(viewsync.DefaultMaxValueDepth+1, "") // within maxValue
	bigBody := `{"ops":[{"op":"put","id":"x","value":"` + strings.Repeat("v", maxBody) + `"}]}`
	manyOps := `{"ops":[` + strings.TrimSuffix(strings.Repeat(put1+",", maxOps+1), ",") + `]}`

	const (
		bad   = http.StatusBadRequest
		nf    = http.StatusNotFound
		pf    = http.StatusPreconditionFailed
		large = http.StatusRequestEntityTooLarge
		media = http.StatusUnsupportedMediaType
	)
	tests := []struct {
		name   string
		method string
		path   string
		header []string
		body   string
		status int
	}{
		// Commit bodies.
		{"commit: malformed JSON", "POST", commits, ctJSON, `{"ops":[`, bad},
		{"commit: not JSON", "POST", commits, ctJSON, `ops=1`, bad},
		{"commit: empty body", "POST", commits, ctJSON, ``, bad},
		{"commit: invalid UTF-8 in value", "POST", commits, ctJSON, "{\"ops\":[{\"op\":\"put\",\"id\":\"x\",\"value\":\"\xff\"}]}", bad},
		{"commit: invalid UTF-8 in id", "POST", commits, ctJSON, "{\"ops\":[{\"op\":\"put\",\"id\":\"a\xff\",\"value\":1}]}", bad},
		{"commit: array instead of object", "POST", commits, ctJSON, `[` + put1 + `]`, bad},
		{"commit: null", "POST", commits, ctJSON, `null`, bad},
		{"commit: string", "POST", commits, ctJSON, `"ops"`, bad},
		{"commit: no ops", "POST", commits, ctJSON, `{}`, bad},
		{"commit: ops null", "POST", commits, ctJSON, `{"ops":null}`, bad},
		{"commit: ops an object", "POST", commits, ctJSON, `{"ops":{"op":"put"}}`, bad},
		{"commit: op a number", "POST", commits, ctJSON, `{"ops":[1]}`, bad},
		{"commit: id a number", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":5,"value":1}]}`, bad},
		{"commit: if an array", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":["a"]}`, bad},
		{"commit: if version negative", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"a":-1}}`, bad},
		{"commit: if version a string", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"a":"1"}}`, bad},
		{"commit: if version fractional", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"a":1.5}}`, bad},
		{"commit: unknown top-level field", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"extra":1}`, bad},
		{"commit: unknown op field", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x","value":1,"ttl":5}]}`, bad},
		{"commit: trailing object", "POST", commits, ctJSON, `{"ops":[` + put1 + `]} {}`, bad},
		{"commit: field name in other case", "POST", commits, ctJSON, `{"OPS":[` + put1 + `]}`, bad},
		{"commit: op field in other case", "POST", commits, ctJSON, `{"ops":[{"Op":"put","id":"a","value":1}]}`, bad},
		{"commit: ops repeated", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"ops":[` + put1 + `]}`, bad},
		{"commit: op id repeated", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"a","id":"b","value":1}]}`, bad},
		{"commit: a type field", "POST", commits, ctJSON, `{"type":"commit","ops":[` + put1 + `]}`, bad},
		{"commit: trailing garbage", "POST", commits, ctJSON, `{"ops":[` + put1 + `]}x`, bad},
		{"commit: trailing bracket", "POST", commits, ctJSON, `{"ops":[` + put1 + `]}]`, bad},
		{"commit: empty ops", "POST", commits, ctJSON, `{"ops":[]}`, bad},
		{"commit: unknown op kind", "POST", commits, ctJSON, `{"ops":[{"op":"patch","id":"a","value":{}}]}`, bad},
		{"commit: missing op kind", "POST", commits, ctJSON, `{"ops":[{"id":"a","value":1}]}`, bad},
		{"commit: put without value", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x"}]}`, bad},
		{"commit: delete with value", "POST", commits, ctJSON, `{"ops":[{"op":"delete","id":"a","value":1}]}`, bad},
		{"commit: empty id", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"","value":1}]}`, bad},
		{"commit: control char in id", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"a\u0001","value":1}]}`, bad},
		{"commit: C1 control in id", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"a\u0085","value":1}]}`, bad},
		{"commit: bad id in if", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"":0}}`, bad},
		{"commit: second op bad", "POST", commits, ctJSON, `{"ops":[` + put1 + `,{"op":"put","id":"y"}]}`, bad},
		{"commit: stale if", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"a":2}}`, pf},
		{"commit: if 0 on existing", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"a":0}}`, pf},
		{"commit: if on missing", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"zz":1}}`, pf},
		{"commit: delete of missing", "POST", commits, ctJSON, `{"ops":[` + put1 + `,{"op":"delete","id":"zz"}]}`, nf},
		{"commit: text/plain", "POST", commits, []string{"Content-Type", "text/plain"}, `{"ops":[` + put1 + `]}`, media},
		{"commit: no Content-Type", "POST", commits, nil, `{"ops":[` + put1 + `]}`, media},
		{"commit: bad Content-Type syntax", "POST", commits, []string{"Content-Type", "application/json; ="}, `{"ops":[` + put1 + `]}`, media},
		{"commit: latin1 charset", "POST", commits, []string{"Content-Type", "application/json; charset=latin1"}, `{"ops":[` + put1 + `]}`, media},
		{"commit: merge patch type", "POST", commits, ctPatch, `{"ops":[` + put1 + `]}`, media},
		{"commit: body over MaxBodyBytes", "POST", commits, ctJSON, bigBody, large},
		{"commit: too many ops", "POST", commits, ctJSON, manyOps, large},
		{"commit: value over MaxValueBytes", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x","value":` + bigString + `}]}`, large},
		{"commit: bad collection", "POST", "/v1/collections/C/commits", ctJSON, `{"ops":[` + put1 + `]}`, bad},
		{"commit: lone surrogate in id", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"\ud800","value":1}]}`, bad},
		{"commit: lone low surrogate in id", "POST", commits, ctJSON, `{"ops":[{"op":"delete","id":"a\udc00"}]}`, bad},
		{"commit: lone surrogate in if", "POST", commits, ctJSON, `{"ops":[` + put1 + `],"if":{"\ud800":0}}`, bad},
		{"commit: lone surrogate in value", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x","value":["\ud800"]}]}`, bad},
		{"commit: duplicate key in value", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x","value":{"k":1,"k":2}}]}`, bad},
		{"commit: number out of range in value", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x","value":1e400}]}`, bad},
		{"commit: value too deep", "POST", commits, ctJSON, `{"ops":[{"op":"put","id":"x","value":` + tooDeep + `}]}`, bad},

		// Collection names.
		{"name: uppercase", "PUT", "/v1/collections/Products/records/x", ctJSON, `1`, bad},
		{"name: too long", "PUT", "/v1/collections/" + longName + "/records/x", ctJSON, `1`, bad},
		{"name: leading dash", "PUT", "/v1/collections/-a/records/x", ctJSON, `1`, bad},
		{"name: leading dot", "PUT", "/v1/collections/.a/records/x", ctJSON, `1`, bad},
		{"name: space", "PUT", "/v1/collections/a%20b/records/x", ctJSON, `1`, bad},
		{"name: unicode", "PUT", "/v1/collections/%C3%A9/records/x", ctJSON, `1`, bad},
		{"name: snapshot", "GET", "/v1/collections/UPPER", nil, ``, bad},
		{"name: version", "GET", "/v1/collections/" + longName + "/version", nil, ``, bad},
		{"name: changes", "GET", "/v1/collections/_x/changes", nil, ``, bad},

		// Record ids.
		{"id: too long", "PUT", "/v1/collections/c/records/" + longID, ctJSON, `1`, bad},
		{"id: empty", "PUT", "/v1/collections/c/records/", ctJSON, `1`, bad},
		{"id: NUL", "PUT", "/v1/collections/c/records/a%00b", ctJSON, `1`, bad},
		{"id: SOH", "PUT", "/v1/collections/c/records/a%01b", ctJSON, `1`, bad},
		{"id: newline", "PUT", "/v1/collections/c/records/a%0A", ctJSON, `1`, bad},
		{"id: DEL", "PUT", "/v1/collections/c/records/%7F", ctJSON, `1`, bad},
		{"id: NEL", "PUT", "/v1/collections/c/records/a%C2%85", ctJSON, `1`, bad},
		{"id: invalid UTF-8", "PUT", "/v1/collections/c/records/a%FF", ctJSON, `1`, bad},
		{"id: GET too long", "GET", "/v1/collections/c/records/" + longID, nil, ``, bad},
		{"id: GET control", "GET", "/v1/collections/c/records/%1F", nil, ``, bad},
		{"id: PATCH control", "PATCH", "/v1/collections/c/records/a%09", ctPatch, `{}`, bad},
		{"id: DELETE control", "DELETE", "/v1/collections/c/records/a%0D", nil, ``, bad},

		// Record bodies.
		{"put: malformed JSON", "PUT", recA, ctJSON, `{"n":`, bad},
		{"put: empty body", "PUT", recA, ctJSON, ``, bad},
		{"put: two values", "PUT", recA, ctJSON, `1 2`, bad},
		{"put: trailing data", "PUT", recA, ctJSON, `{"n":2}x`, bad},
		{"put: single quotes", "PUT", recA, ctJSON, `'x'`, bad},
		{"put: invalid UTF-8", "PUT", recA, ctJSON, "\"\xc3\x28\"", bad},
		{"put: text/plain", "PUT", recA, []string{"Content-Type", "text/plain"}, `1`, media},
		{"put: no Content-Type", "PUT", recA, nil, `1`, media},
		{"put: merge patch type", "PUT", recA, ctPatch, `1`, media},
		{"put: form type", "PUT", recA, []string{"Content-Type", "application/x-www-form-urlencoded"}, `a=1`, media},
		{"put: value over MaxValueBytes", "PUT", recA, ctJSON, bigString, large},
		{"put: body over MaxBodyBytes", "PUT", recA, ctJSON, `"` + strings.Repeat("v", maxBody) + `"`, large},
		{"put: duplicate key", "PUT", recA, ctJSON, `{"n":1,"n":2}`, bad},
		{"put: duplicate key after unescaping", "PUT", recA, ctJSON, `{"n":1,"\u006e":2}`, bad},
		{"put: duplicate key deep inside", "PUT", recA, ctJSON, `[{"a":[{"n":1,"n":1}]}]`, bad},
		{"put: lone high surrogate", "PUT", recA, ctJSON, `"\ud800"`, bad},
		{"put: lone low surrogate", "PUT", recA, ctJSON, `{"s":"x\uDFFFy"}`, bad},
		{"put: lone surrogate in a key", "PUT", recA, ctJSON, `{"\ud800":1}`, bad},
		{"put: number over float64", "PUT", recA, ctJSON, `1e400`, bad},
		{"put: negative number over float64", "PUT", recA, ctJSON, `[-1e309]`, bad},
		{"put: too deep", "PUT", recA, ctJSON, tooDeep, bad},
		{"put: too deep in objects", "PUT", recA, ctJSON, strings.Repeat(`{"a":`, 33) + `1` + strings.Repeat(`}`, 33), bad},
		{"patch: duplicate key", "PATCH", recA, ctPatch, `{"n":1,"n":2}`, bad},
		{"patch: lone surrogate", "PATCH", recA, ctPatch, `{"s":"\ud800"}`, bad},
		{"patch: number over float64", "PATCH", recA, ctPatch, `{"n":1e400}`, bad},
		{"patch: too deep", "PATCH", recA, ctPatch, `{"n":` + nested(32, "") + `}`, bad},
		{"patch: malformed", "PATCH", recA, ctPatch, `{"n":`, bad},
		{"patch: empty", "PATCH", recA, ctPatch, ``, bad},
		{"patch: trailing data", "PATCH", recA, ctPatch, `{} {}`, bad},
		{"patch: invalid UTF-8", "PATCH", recA, ctPatch, "{\"s\":\"\xff\"}", bad},
		{"patch: text/plain", "PATCH", recA, []string{"Content-Type", "text/plain"}, `{}`, media},
		{"patch: no Content-Type", "PATCH", recA, nil, `{}`, media},
		{"patch: json-patch type", "PATCH", recA, []string{"Content-Type", "application/json-patch+json"}, `[]`, media},
		{"patch: result over MaxValueBytes", "PATCH", recA, ctPatch, `{"s":` + bigString[:len(bigString)-10] + `"}`, large},
		{"patch: missing record", "PATCH", "/v1/collections/c/records/zz", ctPatch, `{"n":1}`, nf},
		{"patch: collection never written", "PATCH", "/v1/collections/never/records/a", ctPatch, `{"n":1}`, nf},
		{"delete: missing record", "DELETE", "/v1/collections/c/records/zz", nil, ``, nf},
		{"delete: collection never written", "DELETE", "/v1/collections/never/records/a", nil, ``, nf},

		// Preconditions.
		{"if-match: unquoted", "PUT", recA, with(ctJSON, "If-Match", "1"), `2`, bad},
		{"if-match: unquoted 12", "DELETE", recA, []string{"If-Match", "12"}, ``, bad},
		{"if-match: not a number", "PUT", recA, with(ctJSON, "If-Match", `"abc"`), `2`, bad},
		{"if-match: zero", "PUT", recA, with(ctJSON, "If-Match", `"0"`), `2`, bad},
		{"if-match: negative", "PATCH", recA, with(ctPatch, "If-Match", `"-1"`), `{}`, bad},
		{"if-match: list", "PUT", recA, with(ctJSON, "If-Match", `"1", "2"`), `2`, bad},
		{"if-match: snapshot tag", "PUT", recA, with(ctJSON, "If-Match", `"E:1"`), `2`, bad},
		{"if-match: empty quotes", "PUT", recA, with(ctJSON, "If-Match", `""`), `2`, bad},
		{"if-match: overflow", "PUT", recA, with(ctJSON, "If-Match", `"18446744073709551616"`), `2`, bad},
		{"both If-Match and If-None-Match", "PUT", recA, with(ctJSON, "If-Match", `"1"`, "If-None-Match", "*"), `2`, bad},
		{"if-none-match: a version on PUT", "PUT", recA, with(ctJSON, "If-None-Match", `"3"`), `2`, bad},
		{"if-none-match: a version on PATCH", "PATCH", recA, with(ctPatch, "If-None-Match", `"1"`), `{}`, bad},
		{"if-none-match: a version on DELETE", "DELETE", recA, []string{"If-None-Match", `"1"`}, ``, bad},
		{"if-match: stale on PUT", "PUT", recA, with(ctJSON, "If-Match", `"2"`), `2`, pf},
		{"if-match: stale on PATCH", "PATCH", recB, with(ctPatch, "If-Match", `"1"`), `{}`, pf},
		{"if-match: stale on DELETE", "DELETE", recB, []string{"If-Match", `"1"`}, ``, pf},
		{"if-match: future on PUT", "PUT", recA, with(ctJSON, "If-Match", `"99"`), `2`, pf},
		{"if-match: * on missing PUT", "PUT", "/v1/collections/c/records/zz", with(ctJSON, "If-Match", "*"), `2`, pf},
		{"if-match: * on missing DELETE", "DELETE", "/v1/collections/c/records/zz", []string{"If-Match", "*"}, ``, pf},
		{"if-match: version on missing PUT", "PUT", "/v1/collections/c/records/zz", with(ctJSON, "If-Match", `"1"`), `2`, pf},
		{"if-none-match: * on existing PUT", "PUT", recA, with(ctJSON, "If-None-Match", "*"), `2`, pf},
		{"if-none-match: * on existing PATCH", "PATCH", recA, with(ctPatch, "If-None-Match", "*"), `{}`, pf},
		{"if-none-match: * on existing DELETE", "DELETE", recA, []string{"If-None-Match", "*"}, ``, pf},

		// Changes queries.
		{"after: negative", "GET", changes + "?after=-1", nil, ``, bad},
		{"after: letters", "GET", changes + "?after=abc", nil, ``, bad},
		{"after: overflow", "GET", changes + "?after=99999999999999999999999", nil, ``, bad},
		{"after: just over uint64", "GET", changes + "?after=18446744073709551616", nil, ``, bad},
		{"after: fractional", "GET", changes + "?after=1.5", nil, ``, bad},
		{"after: plus sign", "GET", changes + "?after=%2B1", nil, ``, bad},
		{"after: spaces", "GET", changes + "?after=%201", nil, ``, bad},
		{"after: empty", "GET", changes + "?after=", nil, ``, bad},
		{"after: cursor form", "GET", changes + "?after=E:1", nil, ``, bad},
		{"after: twice", "GET", changes + "?after=1&after=2", nil, ``, bad},
		{"epoch: bad chars", "GET", changes + "?after=1&epoch=a.b", nil, ``, bad},
		{"epoch: colon", "GET", changes + "?after=1&epoch=a:b", nil, ``, bad},
		{"epoch: space", "GET", changes + "?after=1&epoch=a+b", nil, ``, bad},
		{"epoch: too long", "GET", changes + "?after=1&epoch=" + strings.Repeat("e", protocol.MaxEpochLen+1), nil, ``, bad},
		{"epoch: twice", "GET", changes + "?after=1&epoch=a&epoch=b", nil, ``, bad},
		{"wait: forever", "GET", changes + "?after=2&wait=forever", nil, ``, bad},
		{"wait: negative", "GET", changes + "?after=2&wait=-1s", nil, ``, bad},
		{"wait: negative seconds", "GET", changes + "?after=2&wait=-1", nil, ``, bad},
		{"wait: over max", "GET", changes + "?after=2&wait=2s", nil, ``, bad},
		{"wait: over max in seconds", "GET", changes + "?after=2&wait=5", nil, ``, bad},
		{"wait: over an hour", "GET", changes + "?after=2&wait=3601", nil, ``, bad},
		{"wait: overflowing duration", "GET", changes + "?after=2&wait=9999999999h", nil, ``, bad},
		{"limit: zero", "GET", changes + "?after=0&limit=0", nil, ``, bad},
		{"limit: negative", "GET", changes + "?after=0&limit=-1", nil, ``, bad},
		{"limit: letters", "GET", changes + "?after=0&limit=ten", nil, ``, bad},
		{"limit: overflow", "GET", changes + "?after=0&limit=99999999999999999999", nil, ``, bad},
		{"wait: twice", "GET", changes + "?after=2&wait=0&wait=0", nil, ``, bad},
		{"limit: twice", "GET", changes + "?after=0&limit=1&limit=1", nil, ``, bad},
		{"client: twice", "GET", changes + "?after=0&client=a&client=b", nil, ``, bad},

		// Query strings that do not parse, on every endpoint.
		{"query: after a malformed escape", "GET", changes + "?after=%zz", nil, ``, bad},
		{"query: a malformed escape in another parameter", "GET", changes + "?after=2&cb=%zz", nil, ``, bad},
		{"query: a truncated escape", "GET", changes + "?after=%3", nil, ``, bad},
		{"query: a semicolon separator", "GET", changes + "?after=1;epoch=x", nil, ``, bad},
		{"query: snapshot", "GET", "/v1/collections/c?cb=%zz", nil, ``, bad},
		{"query: version", "GET", "/v1/collections/c/version?%zz", nil, ``, bad},
		{"query: record", "GET", recA + "?x=%", nil, ``, bad},
		{"query: put", "PUT", recA + "?x=%zz", ctJSON, `5`, bad},
		{"query: patch", "PATCH", recA + "?x=%zz", ctPatch, `{"m":1}`, bad},
		{"query: delete", "DELETE", recA + "?a;b", nil, ``, bad},
		{"query: commit", "POST", commits + "?x=%zz", ctJSON, `{"ops":[` + put1 + `]}`, bad},
		{"query: events", "GET", "/v1/collections/c/events?after=%zz", nil, ``, bad},
		{"query: websocket", "GET", "/v1/ws?token=%zz", nil, ``, bad},
		{"query: call", "POST", "/v1/calls/echo?x=%zz", ctJSON, `{"arg":1}`, bad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.state("c", "d")
			var body []byte
			if tt.body != "" || tt.method == "PUT" || tt.method == "POST" || tt.method == "PATCH" {
				body = []byte(tt.body)
			}
			r := s.do(tt.method, tt.path, body, tt.header...)
			wantError(t, r, tt.status, codeOf[tt.status])
			if after := s.state("c", "d"); !equalState(before, after) {
				t.Fatalf("the store changed: before %+v, after %+v", before, after)
			}
		})
	}
	// Every refusal left the hub's view consistent with the store.
	if got := versionOf(t, s, "c"); got.Version != 2 {
		t.Fatalf("collection c at version %d after bad input, want 2", got.Version)
	}
}

// codeOf is the contract's error code for each status TestBadInput expects.
var codeOf = map[int]protocol.Code{
	http.StatusBadRequest:            protocol.CodeBadRequest,
	http.StatusNotFound:              protocol.CodeNotFound,
	http.StatusPreconditionFailed:    protocol.CodePreconditionFailed,
	http.StatusRequestEntityTooLarge: protocol.CodeTooLarge,
	http.StatusUnsupportedMediaType:  protocol.CodeUnsupportedMediaType,
}
