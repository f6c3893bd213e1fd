package spec_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/client"
	"github.com/viewsync/viewsync/docs"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/server"
	"github.com/viewsync/viewsync/store"
)

// unexercised are the documented answers the tests do not provoke, with
// the reason; every other documented status of every operation must be
// seen, and none of these may be.
var unexercised = map[string]map[int]string{
	"getSnapshot":    {500: internal},
	"getVersion":     {500: internal},
	"getChanges":     {500: internal},
	"getRecord":      {500: internal},
	"putRecord":      {500: internal, 408: slowBody, 409: keyInFlight},
	"patchRecord":    {500: internal, 408: slowBody, 409: keyInFlight},
	"deleteRecord":   {500: internal, 409: keyInFlight},
	"postCommit":     {500: internal, 408: slowBody, 409: keyInFlight},
	"postCall":       {500: internal, 408: slowBody},
	"putPresence":    {500: internal, 408: slowBody},
	"deletePresence": {500: internal},
	"getEvents":      {500: noFlush},
	"getStream":      {500: noFlush},
	"openWebSocket":  {},
	"headSnapshot":   {500: internal},
	"headVersion":    {500: internal},
	"headChanges":    {500: internal},
	"headRecord":     {500: internal},
	"headEvents":     {500: noFlush},
	"headStream":     {500: noFlush},
}

const (
	internal = "an internal failure of the store or the server"
	slowBody = "a body slower than the body timeout (the guard package's tests)"
	noFlush  = "a ResponseWriter that cannot flush"
	// keyInFlight: postCall's 409 is provoked here, with a slow handler;
	// a write's takes a store slower than the wait (httpapi's and idem's
	// tests hold the rule itself, which is the same for both).
	keyInFlight = "a write still in flight when a retry's wait runs out"
)

// secret signs the tokens of the server with access control.
var secret = []byte("spec-test-secret-of-at-least-32-bytes!")

// token returns a token for sub with rights, valid for ttl.
func token(t *testing.T, sub string, rights map[string][]string, ttl time.Duration) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":      sub,
		"exp":      time.Now().Add(ttl).Unix(),
		"viewsync": rights,
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bearer returns the Authorization header of tok, as header pairs.
func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// TestContract holds a real server to docs/openapi.yaml and
// docs/asyncapi.yaml: both documents load and validate, the server's
// routes are the OpenAPI document's operations, every documented status
// of every operation is answered (but those listed in unexercised) and
// every request and answer matches its operation, and the live
// transports' messages match the AsyncAPI document's schemas.
func TestContract(t *testing.T) {
	loadOpenAPI(t)
	async := loadAsyncAPI(t)
	cov := &coverage{}

	t.Run("routes", func(t *testing.T) { testRoutes(t, cov) })
	t.Run("codes", func(t *testing.T) { testCodes(t, async) })
	t.Run("anonymous", func(t *testing.T) { testAnonymous(t, cov, async) })
	t.Run("access", func(t *testing.T) { testAccess(t, cov, async) })
	t.Run("catchup", func(t *testing.T) { testCatchUp(t, cov, async) })
	t.Run("closed", func(t *testing.T) { testClosed(t, cov, async) })
	if t.Failed() {
		return // coverage means little after a failure
	}
	t.Run("coverage", func(t *testing.T) { testCoverage(t, cov) })
}

// goRoute, goConst and goParams read the routes the server registers in
// its source: a method and a path, literal or a constant (made of another
// and a literal), with Go's path wildcards.
var (
	goRoute  = regexp.MustCompile(`"(GET|PUT|PATCH|DELETE|POST) (?:"\s*\+\s*(\w+)|(/[^"]*)")`)
	goConst  = regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*(?:(\w+)\s*\+\s*)?"([^"]*)"`)
	goParams = regexp.MustCompile(`\{(\w+)(\.\.\.)?\}`)
)

// serverRoutes returns the routes the server registers, "METHOD /path"
// with OpenAPI's path templates: those of the API's handler and of the
// server's own mux, read from their source, and the browser client's.
func serverRoutes(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"../../transport/httpapi", "../../server"} {
		fs, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	var routes []string
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		consts := map[string]string{}
		for _, m := range goConst.FindAllStringSubmatch(string(src), -1) {
			consts[m[1]] = consts[m[2]] + m[3]
		}
		for _, m := range goRoute.FindAllStringSubmatch(string(src), -1) {
			path := m[3]
			if m[2] != "" {
				path = consts[m[2]]
				if path == "" {
					t.Fatalf("%s: route %s names %s, whose value this test cannot read", file, m[0], m[2])
				}
			}
			routes = append(routes, m[1]+" "+path)
		}
	}
	routes = append(routes, client.Patterns...)
	for i, r := range routes {
		r = goParams.ReplaceAllString(r, "{$1}")
		if strings.HasSuffix(r, "/") {
			r += "{module}" // the client's modules
		}
		routes[i] = r
		// A GET pattern serves HEAD too; the WebSocket's handler refuses it.
		if path, ok := strings.CutPrefix(r, "GET "); ok && path != "/v1/ws" {
			routes = append(routes, "HEAD "+path)
		}
	}
	slices.Sort(routes)
	return slices.Compact(routes)
}

// specRoutes returns the OpenAPI document's operations as "METHOD /path".
func specRoutes(t *testing.T) []string {
	t.Helper()
	var routes []string
	for path, item := range loadOpenAPI(t).Paths.Map() {
		for method := range item.Operations() {
			routes = append(routes, method+" "+path)
		}
	}
	slices.Sort(routes)
	return routes
}

// testRoutes compares the server's routes with the document's operations
// both ways, and checks each API path's other methods: 405 with an Allow
// header naming the documented ones.
func testRoutes(t *testing.T, cov *coverage) {
	have, documented := serverRoutes(t), specRoutes(t)
	for _, r := range have {
		if !slices.Contains(documented, r) {
			t.Errorf("the server routes %s, which openapi.yaml does not document", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(have, r) {
			t.Errorf("openapi.yaml documents %s, which the server does not route", r)
		}
	}

	e := newEnv(t, cov, nil)
	methods := map[string][]string{}
	for _, r := range documented {
		m, p, _ := strings.Cut(r, " ")
		methods[p] = append(methods[p], m)
	}
	for path, ms := range methods {
		if !strings.HasPrefix(path, "/v1/") {
			continue
		}
		probe := strings.NewReplacer("{c}", "c", "{id}", "x", "{name}", "n").Replace(path)
		allow := slices.Clone(ms)
		for _, m := range []string{"GET", "HEAD", "PUT", "PATCH", "DELETE", "POST"} {
			if slices.Contains(ms, m) {
				continue
			}
			req, _ := http.NewRequest(m, e.url+probe, nil)
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := strings.Split(strings.ReplaceAll(resp.Header.Get("Allow"), " ", ""), ",")
			slices.Sort(got)
			slices.Sort(allow)
			if resp.StatusCode != http.StatusMethodNotAllowed || !slices.Equal(got, allow) {
				t.Errorf("%s %s: %d, Allow %q; openapi.yaml documents %v", m, probe, resp.StatusCode, resp.Header.Get("Allow"), allow)
			}
		}
	}
}

// goCode matches an error code of the contract in protocol's source.
var goCode = regexp.MustCompile(`(?m)^\s*Code\w+\s+Code = "(\w+)"`)

// testCodes checks that both documents' enums of error codes are the
// protocol's codes.
func testCodes(t *testing.T, async *asyncSpec) {
	src, err := os.ReadFile("../../protocol/errors.go")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, m := range goCode.FindAllStringSubmatch(string(src), -1) {
		codes = append(codes, m[1])
	}
	slices.Sort(codes)
	if len(codes) < 10 {
		t.Fatalf("protocol/errors.go: read %d codes, %v", len(codes), codes)
	}
	var inOpenAPI []string
	for _, v := range loadOpenAPI(t).Components.Schemas["ErrorCode"].Value.Enum {
		inOpenAPI = append(inOpenAPI, v.(string))
	}
	slices.Sort(inOpenAPI)
	if !slices.Equal(inOpenAPI, codes) {
		t.Errorf("openapi.yaml's ErrorCode enum is %v; the protocol's codes are %v", inOpenAPI, codes)
	}
	var inAsyncAPI []string
	for _, v := range async.doc["components"].(map[string]any)["schemas"].(map[string]any)["ErrorCode"].(map[string]any)["enum"].([]any) {
		inAsyncAPI = append(inAsyncAPI, v.(string))
	}
	slices.Sort(inAsyncAPI)
	if !slices.Equal(inAsyncAPI, codes) {
		t.Errorf("asyncapi.yaml's ErrorCode enum is %v; the protocol's codes are %v", inAsyncAPI, codes)
	}
}

// testAnonymous drives a server without access control through every
// operation, with good and bad inputs, and its live transports.
func testAnonymous(t *testing.T, cov *coverage, async *asyncSpec) {
	e := newEnv(t, cov, &server.Options{
		MaxBodyBytes: 16 << 10,
		// Long enough that a retry of a call still running reaches the
		// server, and waits MaxWait, before the call times out, however
		// busy the machine.
		CallTimeout:  2 * time.Second,
		PingInterval: 100 * time.Millisecond,
		// One presence set per session at once: the second is refused.
		Presence: presence.Options{SetRate: 0.001},
		// A retry waits for the first request with its key this long.
		Idempotency: viewsync.IdempotencyOptions{MaxWait: 50 * time.Millisecond},
	})
	hub := e.srv.Hub()
	hub.HandleCall("echo", func(ctx context.Context, c *viewsync.Call) (any, error) { return c.Arg, nil })
	hub.HandleCall("stale", func(ctx context.Context, c *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: protocol.CodePreconditionFailed, Message: "the price changed"}
	})
	hub.HandleCall("closed", func(ctx context.Context, c *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: protocol.CodeMethodNotAllowed, Message: "the shop is closed"}
	})
	hub.HandleCall("upstream", func(ctx context.Context, c *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: protocol.CodeBadGateway, Message: "the backend failed"}
	})
	hub.HandleCall("busy", func(ctx context.Context, c *viewsync.Call) (any, error) {
		return nil, fmt.Errorf("the stock service: %w", viewsync.ErrClosed)
	})
	// slowStarted has a token for each slow call started, as many as it
	// holds.
	slowStarted := make(chan struct{}, 4)
	hub.HandleCall("slow", func(ctx context.Context, c *viewsync.Call) (any, error) {
		select {
		case slowStarted <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	big := `"` + strings.Repeat("x", 20<<10) + `"`
	const (
		c      = "/v1/collections/products"
		rec    = c + "/records/"
		merge  = "application/merge-patch+json"
		plain  = "text/plain"
		ctype  = "Content-Type"
		ifm    = "If-Match"
		ifnm   = "If-None-Match"
		filter = `{"price":{"$lt":50}}`
	)
	where := "where=" + url.QueryEscape(filter)

	// Writes of one record.
	resp, _ := e.do(t, call{method: "PUT", path: rec + "p1", body: `{"name":"Lamp","price":12.5}`, want: 200})
	if resp.Header.Get("ETag") != `"1"` {
		t.Errorf("PUT: ETag %q, want \"1\"", resp.Header.Get("ETag"))
	}
	e.do(t, call{method: "PUT", path: rec + "p1", body: `{}`, header: []string{ifnm, "*"}, want: 412})
	e.do(t, call{method: "PUT", path: rec + "p1", body: `{}`, header: []string{ifm, `"99"`}, want: 412})
	e.do(t, call{method: "PUT", path: rec + "p1", body: `{"name":"Lamp","price":11}`, header: []string{ifm, `"1"`}, want: 200})
	e.do(t, call{method: "PUT", path: rec + "p1", body: `{"name":`, want: 400, offSpec: true})
	e.do(t, call{method: "PUT", path: rec + "p1", body: `"lamp"`, header: []string{ctype, plain}, want: 415, offSpec: true})
	e.do(t, call{method: "PUT", path: rec + "p1", body: big, want: 413})
	e.do(t, call{method: "PUT", path: rec + "p1", body: `{}`, header: []string{ifm, `W/"1"`}, want: 400, offSpec: true})
	e.do(t, call{method: "PUT", path: rec + "p1", body: `{}`, header: []string{ifm, `"2"`, ifnm, "*"}, want: 400})
	e.do(t, call{method: "PUT", path: "/v1/collections/No!/records/p1", body: `{}`, want: 400, offSpec: true})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: `{"price":10}`, header: []string{ctype, merge, ifm, `"2"`}, want: 200})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: `{"price":9}`, header: []string{ctype, merge, ifm, `"1"`}, want: 412})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: `{"stock":3}`, want: 200})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: `{}`, header: []string{ctype, plain}, want: 415, offSpec: true})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: big, header: []string{ctype, merge}, want: 413})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: `{"a":`, header: []string{ctype, merge}, want: 400, offSpec: true})
	e.do(t, call{method: "PATCH", path: rec + "p0", body: `{"a":1}`, header: []string{ctype, merge}, want: 404})
	e.do(t, call{method: "PATCH", path: rec + "p1", body: `{"a":1}`, header: []string{ctype, merge, ifnm, "*"}, want: 412})
	e.do(t, call{method: "PUT", path: rec + "gone", body: `1`, want: 200})
	e.do(t, call{method: "DELETE", path: rec + "gone", header: []string{ifm, `"1"`}, want: 412})
	e.do(t, call{method: "DELETE", path: rec + "gone", header: []string{ifm, `"x1"`}, want: 400, offSpec: true})
	e.do(t, call{method: "DELETE", path: rec + "gone", want: 200})
	e.do(t, call{method: "DELETE", path: rec + "gone", want: 404})
	e.do(t, call{method: "DELETE", path: rec + "gone", header: []string{ifm, "*"}, want: 412})

	// Commits.
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"put","id":"p2","value":{"name":"Desk","price":99}}],"if":{"p2":0}}`, want: 200})
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"put","id":"p2","value":{}}],"if":{"p2":0}}`, want: 412})
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[]}`, want: 400, offSpec: true})
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"move","id":"p2"}]}`, want: 400, offSpec: true})
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"delete","id":"p1"}],"then":1}`, want: 400, offSpec: true})
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[]}`, header: []string{ctype, plain}, want: 415, offSpec: true})
	e.do(t, call{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"put","id":"p3","value":` + big + `}]}`, want: 413})

	// Reads.
	resp, _ = e.do(t, call{method: "GET", path: c, want: 200})
	etag := resp.Header.Get("ETag")
	e.do(t, call{method: "GET", path: c, header: []string{ifnm, etag}, want: 304})
	resp, _ = e.do(t, call{method: "GET", path: c + "?" + where, want: 200})
	e.do(t, call{method: "GET", path: c + "?" + where, header: []string{ifnm, resp.Header.Get("ETag")}, want: 304})
	e.do(t, call{method: "GET", path: c + "?where=" + url.QueryEscape(`{"price":{"$near":1}}`), want: 400})
	e.do(t, call{method: "GET", path: c + "?where=price", want: 400, offSpec: true})
	e.do(t, call{method: "GET", path: "/v1/collections/-x", want: 400, offSpec: true})
	resp, body := e.do(t, call{method: "GET", path: c + "/version", want: 200})
	var head protocol.Head
	if err := json.Unmarshal(body, &head); err != nil {
		t.Fatal(err)
	}
	e.do(t, call{method: "GET", path: c + "/version", header: []string{ifnm, resp.Header.Get("ETag")}, want: 304})
	e.do(t, call{method: "GET", path: "/v1/collections/_x/version", want: 400, offSpec: true})
	resp, _ = e.do(t, call{method: "GET", path: rec + "p1", want: 200})
	e.do(t, call{method: "GET", path: rec + "p1", header: []string{ifnm, resp.Header.Get("ETag")}, want: 304})
	e.do(t, call{method: "GET", path: rec + "p1?where=" + url.QueryEscape(`{"price":{"$gt":50}}`), want: 404})
	e.do(t, call{method: "GET", path: rec + "nope", want: 404})
	e.do(t, call{method: "GET", path: rec + "p1?where=%7B", want: 400})
	e.do(t, call{method: "GET", path: "/v1/collections/A/records/p1", want: 400, offSpec: true})

	// Changes and the long-poll.
	ep := "epoch=" + head.Epoch
	_, body = e.do(t, call{method: "GET", path: c + "/changes?after=0", want: 200})
	if !strings.Contains(string(body), `"commits":[{`) {
		t.Errorf("changes after 0: %s", body)
	}
	_, body = e.do(t, call{method: "GET", path: c + "/changes?after=1&limit=1&" + ep, want: 200})
	if !strings.Contains(string(body), `"version":2,"commits"`) {
		t.Errorf("a page of one commit: %s", body)
	}
	_, body = e.do(t, call{method: "GET", path: c + "/changes?after=1&epoch=another", want: 200})
	if !strings.Contains(string(body), `"reset":true`) {
		t.Errorf("changes in another epoch: %s, want a reset", body)
	}
	_, body = e.do(t, call{method: "GET", path: c + "/changes?wait=100ms&client=spec&after=" + strconv.FormatUint(head.Version, 10), want: 200})
	if !strings.Contains(string(body), `"commits":[]`) {
		t.Errorf("a long-poll that timed out: %s", body)
	}
	e.do(t, call{method: "GET", path: c + "/changes?after=0&" + where, want: 200})
	e.do(t, call{method: "GET", path: c + "/changes?after=one", want: 400, offSpec: true})
	e.do(t, call{method: "GET", path: c + "/changes?limit=0", want: 400, offSpec: true})
	e.do(t, call{method: "GET", path: c + "/changes?wait=soon", want: 400, offSpec: true})
	e.do(t, call{method: "GET", path: c + "/changes?wait=2h", want: 400})
	e.do(t, call{method: "GET", path: c + "/changes?epoch=a.b", want: 400, offSpec: true})

	// Calls.
	_, body = e.do(t, call{method: "POST", path: "/v1/calls/echo", body: `{"arg":{"x":2}}`, want: 200})
	if string(body) != `{"result":{"x":2},"versions":{}}` {
		t.Errorf("call echo: %s", body)
	}
	e.do(t, call{method: "POST", path: "/v1/calls/echo", body: `{}`, want: 200})
	e.do(t, call{method: "POST", path: "/v1/calls/nope", body: `{"arg":1}`, want: 404})
	e.do(t, call{method: "POST", path: "/v1/calls/no%20pe", body: `{"arg":1}`, want: 400, offSpec: true})
	e.do(t, call{method: "POST", path: "/v1/calls/echo", body: `{"args":1}`, want: 400, offSpec: true})
	e.do(t, call{method: "POST", path: "/v1/calls/echo", body: `{"arg":1}`, header: []string{ctype, plain}, want: 415, offSpec: true})
	e.do(t, call{method: "POST", path: "/v1/calls/echo", body: `{"arg":` + big + `}`, want: 413})
	e.do(t, call{method: "POST", path: "/v1/calls/stale", body: `{"arg":1}`, want: 412})
	e.do(t, call{method: "POST", path: "/v1/calls/closed", body: `{"arg":1}`, want: 405})
	e.do(t, call{method: "POST", path: "/v1/calls/upstream", body: `{"arg":1}`, want: 502})
	e.do(t, call{method: "POST", path: "/v1/calls/busy", body: `{"arg":1}`, want: 503})
	e.do(t, call{method: "POST", path: "/v1/calls/slow", body: `{"arg":1}`, want: 504})

	// Refused streams and upgrades.
	for _, s := range []string{"/events", "/stream"} {
		e.do(t, call{method: "GET", path: c + s + "?after=x", want: 400, offSpec: true})
		e.do(t, call{method: "GET", path: c + s + "?" + ep, want: 400})
		e.do(t, call{method: "GET", path: c + s, header: []string{"Last-Event-ID", "x:y"}, want: 400, offSpec: true})
		e.do(t, call{method: "GET", path: c + s + "?where=" + url.QueryEscape(`{"$or":1}`), want: 400})
		e.do(t, call{method: "GET", path: "/v1/collections/Products" + s, want: 400, offSpec: true})
	}
	e.do(t, call{method: "GET", path: "/v1/ws", want: 426, offSpec: true})
	badKey := slices.Clone(wsUpgrade)
	badKey[7] = "short"
	e.do(t, call{method: "GET", path: "/v1/ws", header: badKey, want: 400, offSpec: true})
	e.do(t, call{method: "GET", path: "/v1/ws", header: append(slices.Clone(wsUpgrade), "Origin", "https://elsewhere.example"), want: 403})
	e.do(t, call{method: "GET", path: "/v1/ws", header: []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "8", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol", protocol.WSSubprotocol}, want: 426, offSpec: true})

	// Operations and the client.
	e.do(t, call{method: "GET", path: "/healthz", want: 200})
	e.do(t, call{method: "GET", path: "/readyz", want: 200})
	e.do(t, call{method: "GET", path: "/metrics", want: 200})
	if _, body := e.do(t, call{method: "GET", path: "/openapi.yaml", want: 200}); !bytes.Equal(body, docs.OpenAPI) {
		t.Errorf("GET /openapi.yaml: %.40q…, not docs/openapi.yaml", body)
	}
	if _, body := e.do(t, call{method: "GET", path: "/asyncapi.yaml", want: 200}); !bytes.Equal(body, docs.AsyncAPI) {
		t.Errorf("GET /asyncapi.yaml: %.40q…, not docs/asyncapi.yaml", body)
	}
	for _, p := range []string{"/viewsync.js", "/viewsync.d.ts", "/viewsync/session.js"} {
		resp, _ := e.do(t, call{method: "GET", path: p, want: 200})
		e.do(t, call{method: "GET", path: p, header: []string{ifnm, resp.Header.Get("ETag")}, want: 304})
	}
	e.do(t, call{method: "GET", path: "/viewsync/nope.js", want: 404})

	// HEAD of every read: the GET's status and headers.
	for _, p := range []string{c, c + "/version", rec + "p1"} {
		resp, _ := e.do(t, call{method: "HEAD", path: p, want: 200})
		e.do(t, call{method: "HEAD", path: p, header: []string{ifnm, resp.Header.Get("ETag")}, want: 304})
	}
	e.do(t, call{method: "HEAD", path: rec + "nope", want: 404})
	for _, p := range []string{c + "/changes?after=0", c + "/events", c + "/stream", "/healthz", "/readyz", "/metrics", "/openapi.yaml", "/asyncapi.yaml"} {
		e.do(t, call{method: "HEAD", path: p, want: 200})
	}
	for _, p := range []string{c, c + "/version", c + "/changes", rec + "p1", c + "/events", c + "/stream"} {
		e.do(t, call{method: "HEAD", path: p + "?where=%7B%22%24x%22%3A1%7D", want: 400})
	}
	for _, p := range []string{"/viewsync.js", "/viewsync.d.ts", "/viewsync/session.js"} {
		resp, _ := e.do(t, call{method: "HEAD", path: p, want: 200})
		e.do(t, call{method: "HEAD", path: p, header: []string{ifnm, resp.Header.Get("ETag")}, want: 304})
	}
	e.do(t, call{method: "HEAD", path: "/viewsync/nope.js", want: 404})

	t.Run("idempotency", func(t *testing.T) { testIdempotency(t, e, slowStarted) })
	t.Run("events", func(t *testing.T) { testEvents(t, e, async, where) })
	t.Run("stream", func(t *testing.T) { testStream(t, e, async, where) })
	t.Run("websocket", func(t *testing.T) { testWebSocket(t, e, async) })
}

// testIdempotency sends each keyed write and call twice — the retry is
// replayed (Idempotent-Replayed: true, the same answer) — then another
// request under the key (422), a malformed key (400), and a retry of a
// call still running past the wait (409), sent once slowStarted tells the
// call runs.
func testIdempotency(t *testing.T, e *env, slowStarted chan struct{}) {
	const (
		c   = "/v1/collections/keyed"
		key = "Idempotency-Key"
	)
	merge := []string{"Content-Type", "application/merge-patch+json"}
	for i, tc := range []struct {
		method, path, body, other string
		header                    []string
	}{
		{"PUT", c + "/records/k1", `{"n":1}`, `{"n":2}`, nil},
		{"PATCH", c + "/records/k1", `{"m":1}`, `{"m":2}`, merge},
		{"POST", c + "/commits", `{"ops":[{"op":"put","id":"k2","value":1}]}`, `{"ops":[{"op":"put","id":"k2","value":2}]}`, nil},
		{"DELETE", c + "/records/k2", ``, ``, nil},
		{"POST", "/v1/calls/echo", `{"arg":{"x":1}}`, `{"arg":{"x":2}}`, nil},
	} {
		k := fmt.Sprintf("0f8fad5b-d9cb-469f-a165-7086772895%02d", i)
		h := append([]string{key, k}, tc.header...)
		resp, first := e.do(t, call{method: tc.method, path: tc.path, body: tc.body, header: h, want: 200})
		if resp.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("%s %s: the first answer says it was replayed", tc.method, tc.path)
		}
		resp, again := e.do(t, call{method: tc.method, path: tc.path, body: tc.body, header: h, want: 200})
		if resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first, again) {
			t.Errorf("%s %s retried: Idempotent-Replayed %q, %s; want true, %s", tc.method, tc.path, resp.Header.Get("Idempotent-Replayed"), again, first)
		}
		other := tc.other
		oh := h
		if tc.method == "DELETE" {
			oh = append(h, "If-Match", `"1"`) // another precondition: another request
		}
		_, b := e.do(t, call{method: tc.method, path: tc.path, body: other, header: oh, want: 422})
		if !strings.Contains(string(b), `"idempotency_key_reused"`) {
			t.Errorf("%s %s under a used key: %s", tc.method, tc.path, b)
		}
		_, b = e.do(t, call{method: tc.method, path: tc.path, body: tc.body, header: append([]string{key, strings.Repeat("k", 256)}, tc.header...), want: 400, offSpec: true})
		if !strings.Contains(string(b), `"bad_idempotency_key"`) {
			t.Errorf("%s %s with a key too long: %s", tc.method, tc.path, b)
		}
	}
	// A retry of a call still running, past the wait: 409. The retry is
	// sent once the call runs, its key taken.
	for len(slowStarted) > 0 {
		<-slowStarted
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.do(t, call{method: "POST", path: "/v1/calls/slow", body: `{"arg":1}`, header: []string{key, "slow-1"}, want: 504})
	}()
	<-slowStarted
	_, b := e.do(t, call{method: "POST", path: "/v1/calls/slow", body: `{"arg":1}`, header: []string{key, "slow-1"}, want: 409})
	if !strings.Contains(string(b), `"idempotency_in_flight"`) {
		t.Errorf("a retry in flight: %s", b)
	}
	<-done
}

// testEvents reads an event stream and a filtered one and checks their
// events against the SSE channel of asyncapi.yaml: the reset, a commit,
// a view's commit with after, and a view's progress.
func testEvents(t *testing.T, e *env, async *asyncSpec, where string) {
	const c = "/v1/collections/products"
	resp, _ := e.do(t, call{method: "GET", path: c + "/events", want: 200, stream: true})
	defer resp.Body.Close()
	view, _ := e.do(t, call{method: "GET", path: c + "/events?" + where, want: 200, stream: true})
	defer view.Body.Close()
	br, vbr := bufio.NewReader(resp.Body), bufio.NewReader(view.Body)

	next := func(br *bufio.Reader, want string) sseEvent {
		t.Helper()
		for {
			ev, err := readEvent(br)
			if err != nil {
				t.Fatalf("reading events: %v", err)
			}
			async.checkEvent(t, ev)
			if ev.event == want {
				return ev
			}
		}
	}
	next(br, "reset")
	next(vbr, "reset")
	e.do(t, call{method: "PUT", path: c + "/records/e1", body: `{"price":300}`, want: 200}) // outside the view
	e.do(t, call{method: "PUT", path: c + "/records/e2", body: `{"price":3}`, want: 200})
	next(br, "commit")
	ev := next(vbr, "commit")
	if !strings.Contains(ev.data, `"after":`) {
		t.Errorf("a view's commit past a skipped one has no after: %s", ev.data)
	}
	e.do(t, call{method: "PUT", path: c + "/records/e3", body: `{"price":301}`, want: 200})
	next(vbr, "progress")

	// Presence: a stream with presence=1 gives its session; the client
	// publishes, refreshes and withdraws its presence with it.
	pres, _ := e.do(t, call{method: "GET", path: c + "/events?presence=1", want: 200, stream: true})
	defer pres.Body.Close()
	pbr := bufio.NewReader(pres.Body)
	var sync struct{ Session string }
	json.Unmarshal([]byte(next(pbr, "presence").data), &sync)
	if sync.Session == "" {
		t.Fatal("the first presence event names no session")
	}
	p := c + "/presence"
	body := func(rest string) string { return `{"session":"` + sync.Session + `"` + rest + `}` }
	e.do(t, call{method: "PUT", path: p, body: body(`,"record":"e2","state":{"name":"Ana"}`), want: 204})
	if ev := next(pbr, "presence"); !strings.Contains(ev.data, `"event":"join"`) {
		t.Errorf("presence after a set: %s", ev.data)
	}
	// Set again at once: over the rate of sets, and nothing changes.
	if resp, b := e.do(t, call{method: "PUT", path: p, body: body(`,"record":"e2","state":{"name":"Ben"}`), want: 429}); resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), `"rate_limited"`) {
		t.Errorf("a set over the rate: Retry-After %q, %s", resp.Header.Get("Retry-After"), b)
	}
	e.do(t, call{method: "PUT", path: p, body: body(``), want: 204})
	e.do(t, call{method: "PUT", path: p, body: body(`,"state":{"name":"` + strings.Repeat("a", 2000) + `"}`), want: 413})
	e.do(t, call{method: "PUT", path: p, body: body(`,"state":[1]`), want: 400, offSpec: true})
	e.do(t, call{method: "PUT", path: p, body: body(`,"state":{}`), header: []string{"Content-Type", "text/plain"}, want: 415, offSpec: true})
	e.do(t, call{method: "PUT", path: p, body: `{"session":"gone","state":{}}`, want: 404})
	e.do(t, call{method: "DELETE", path: p + "?session=" + sync.Session, want: 204})
	if ev := next(pbr, "presence"); !strings.Contains(ev.data, `"event":"leave"`) {
		t.Errorf("presence after a delete: %s", ev.data)
	}
	e.do(t, call{method: "PUT", path: p, body: body(``), want: 404}) // a heartbeat, not present
	e.do(t, call{method: "DELETE", path: p + "?session=gone", want: 404})
	e.do(t, call{method: "DELETE", path: p, want: 400, offSpec: true})
}

// testStream reads an NDJSON stream and a filtered one and checks their
// lines against the NDJSON channel of asyncapi.yaml.
func testStream(t *testing.T, e *env, async *asyncSpec, where string) {
	const c = "/v1/collections/products"
	resp, _ := e.do(t, call{method: "GET", path: c + "/stream?after=1", want: 200, stream: true})
	defer resp.Body.Close()
	view, _ := e.do(t, call{method: "GET", path: c + "/stream?" + where, want: 200, stream: true})
	defer view.Body.Close()
	br, vbr := bufio.NewReader(resp.Body), bufio.NewReader(view.Body)
	next := func(br *bufio.Reader, want string) []byte {
		t.Helper()
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			typ := serverKey(t, line)
			async.validate(t, "stream", typ, line, nil)
			if typ == want {
				return line
			}
		}
	}
	next(br, "commit") // resuming after 1: the commits since
	next(vbr, "reset")
	pres, _ := e.do(t, call{method: "GET", path: c + "/stream?presence=1", want: 200, stream: true})
	defer pres.Body.Close()
	next(bufio.NewReader(pres.Body), "presence")
	e.do(t, call{method: "PUT", path: c + "/records/n1", body: `{"price":400}`, want: 200})
	next(vbr, "progress")
	next(br, "ping")
}

// testWebSocket opens a WebSocket, checks its handshake against
// openapi.yaml and every message both ways against the WebSocket channel
// of asyncapi.yaml.
func testWebSocket(t *testing.T, e *env, async *asyncSpec) {
	ws := dialWS(t, e)
	defer ws.Close()

	send := func(msg string) {
		t.Helper()
		var m struct {
			Type string `json:"type"`
		}
		json.Unmarshal([]byte(msg), &m)
		async.validate(t, "ws", clientKey(m.Type), []byte(msg), nil)
		if err := ws.write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	sendBad := func(msg, key string) {
		t.Helper()
		async.rejects(t, "ws", key, []byte(msg))
		if err := ws.write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// until reads messages, checking each, until it has seen one of each
	// type of want, and returns the first of each.
	until := func(want ...string) map[string][]byte {
		t.Helper()
		got := map[string][]byte{}
		for len(got) < len(want) {
			b, err := ws.read()
			if err != nil {
				t.Fatalf("reading the WebSocket, waiting for %v: %v", want, err)
			}
			typ := serverKey(t, b)
			async.validate(t, "ws", typ, b, nil)
			if _, ok := got[typ]; !ok && slices.Contains(want, typ) {
				got[typ] = b
			}
		}
		return got
	}

	// The protocol's message types are the channel's.
	want := []string{
		protocol.TypeAck, protocol.TypeCall, protocol.TypeCatchUp, protocol.TypeCommit, protocol.TypeError,
		protocol.TypeProgress, protocol.TypeReset, protocol.TypeResult, protocol.TypeSubscribe, protocol.TypeUnsubscribe,
		protocol.TypePresence,
	}
	slices.Sort(want)
	if got := async.typeConsts(t, "ws"); !slices.Equal(got, want) {
		t.Errorf("asyncapi.yaml's WebSocket messages have the types %v, the protocol %v", got, want)
	}

	send(`{"type":"subscribe","collection":"products"}`)
	until("reset")
	send(`{"type":"subscribe","collection":"products","sub":"cheap","where":{"price":{"$lt":50}},"after":1,"epoch":""}`)
	send(`{"type":"commit","id":"c1","collection":"products","ops":[{"op":"put","id":"w1","value":{"price":1}}],"if":{"w1":0}}`)
	if b := until("result", "commit")["result"]; !strings.Contains(string(b), `"id":"c1"`) {
		t.Errorf("the result of commit c1: %s", b)
	}
	send(`{"type":"call","id":7,"name":"echo","arg":[1,2]}`)
	if b := until("result")["result"]; !strings.Contains(string(b), `"id":7,`) {
		t.Errorf("the result of call 7: %s", b)
	}
	// Idempotency keys: a keyed commit and call sent twice; the second
	// answers are replayed.
	for _, id := range []string{`"k1"`, `"k2"`} {
		send(`{"type":"commit","id":` + id + `,"collection":"keyedws","ops":[{"op":"put","id":"a","value":1}],"idempotencyKey":"ws-commit-1"}`)
		if b := until("result")["result"]; !strings.Contains(string(b), `"version":1}`) || strings.Contains(string(b), `"replayed":true`) != (id == `"k2"`) {
			t.Errorf("keyed commit %s: %s", id, b)
		}
	}
	for _, id := range []string{`"k3"`, `"k4"`} {
		send(`{"type":"call","id":` + id + `,"name":"echo","arg":1,"idempotencyKey":"ws-call-1"}`)
		if b := until("result")["result"]; strings.Contains(string(b), `"replayed":true`) != (id == `"k4"`) {
			t.Errorf("keyed call %s: %s", id, b)
		}
	}
	send(`{"type":"commit","id":"k5","collection":"keyedws","ops":[{"op":"put","id":"a","value":2}],"idempotencyKey":"ws-commit-1"}`)
	if b := until("error")["error"]; !strings.Contains(string(b), `"idempotency_key_reused"`) {
		t.Errorf("a commit under a used key: %s", b)
	}
	send(`{"type":"ack","collection":"products","version":1}`)
	send(`{"type":"ack","collection":"products","sub":"cheap","version":999999}`)
	if b := until("error")["error"]; !strings.Contains(string(b), `"sub":"cheap"`) {
		t.Errorf("an ack ahead of the view: %s", b)
	}
	send(`{"type":"commit","id":8,"collection":"products","ops":[{"op":"put","id":"w2","value":{"price":500}}]}`)
	until("result", "progress")
	send(`{"type":"unsubscribe","collection":"products","sub":"cheap"}`)
	send(`{"type":"unsubscribe","collection":"orders"}`)
	until("error")
	sendBad(`{"type":"subscribe","collection":"products","epoch":"e"}`, "subscribe")
	until("error")
	sendBad(`{"type":"call","id":true,"name":"echo","arg":1}`, "call")
	until("error")
	sendBad(`{"type":"commit","id":"c2","collection":"products","ops":[{"op":"put","id":"w3"}],"extra":1}`, "commitRequest")
	if b := until("error")["error"]; !strings.Contains(string(b), `"id":"c2"`) {
		t.Errorf("a bad commit's error without its id: %s", b)
	}

	// Presence: subscribe with it, publish, refresh, withdraw.
	send(`{"type":"subscribe","collection":"products","presence":true}`)
	until("presence")
	send(`{"type":"presence","id":"p1","collection":"products","record":"w1","state":{"name":"Ana","editing":"w1"}}`)
	if b := until("result", "presence")["presence"]; !strings.Contains(string(b), `"event":"join"`) {
		t.Errorf("presence after a set: %s", b)
	}
	send(`{"type":"presence","id":"p2","collection":"products","record":"w1","state":{"name":"Ben"}}`)
	if b := until("error")["error"]; !strings.Contains(string(b), `"id":"p2"`) || !strings.Contains(string(b), `"rate_limited"`) {
		t.Errorf("a set over the rate: %s", b)
	}
	send(`{"type":"presence","collection":"products"}`)
	send(`{"type":"presence","id":9,"collection":"products","state":null}`)
	until("result")
	send(`{"type":"presence","id":10,"collection":"products"}`) // not present any more
	if b := until("error")["error"]; !strings.Contains(string(b), `"id":10`) || !strings.Contains(string(b), "not_found") {
		t.Errorf("a heartbeat of a withdrawn presence: %s", b)
	}
	sendBad(`{"type":"presence","id":11,"collection":"products","state":[1]}`, "presenceRequest")
	until("error")
}

// wsUpgrade are the headers of a WebSocket upgrade offering viewsync's
// subprotocol.
var wsUpgrade = []string{
	"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Version", "13",
	"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol", protocol.WSSubprotocol,
}

// wsConn is a WebSocket client: a connection upgraded by the test's HTTP
// client, framed by gobwas/ws.
type wsConn struct {
	rw   io.ReadWriteCloser
	stop *time.Timer
}

// dialWS opens a WebSocket to e, with the viewsync subprotocol and the
// headers given in pairs; the handshake is checked against openapi.yaml
// as any request is. The connection is cut after wait, a hang guard.
func dialWS(t *testing.T, e *env, header ...string) *wsConn {
	t.Helper()
	resp, _ := e.do(t, call{method: "GET", path: "/v1/ws", header: append(slices.Clone(wsUpgrade), header...), want: http.StatusSwitchingProtocols, stream: true})
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("WebSocket upgrade: %s", resp.Status)
	}
	return &wsConn{rw: rw, stop: time.AfterFunc(wait, func() { rw.Close() })}
}

// write sends a text message.
func (c *wsConn) write(b []byte) error { return wsutil.WriteClientText(c.rw, b) }

// read returns the next data message, answering pings meanwhile.
func (c *wsConn) read() ([]byte, error) {
	b, _, err := wsutil.ReadServerData(c.rw)
	return b, err
}

// Close closes the connection.
func (c *wsConn) Close() error {
	c.stop.Stop()
	return c.rw.Close()
}

// testAccess drives a server with access control: 401 without a valid
// token, 403 without the right, 429 past the rate of writes or calls, a
// write-only principal's answers, and streams that end when the token
// expires.
func testAccess(t *testing.T, cov *coverage, async *asyncSpec) {
	jv, err := auth.NewJWT(auth.JWTOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	rate := func() *limit.Rate { return limit.NewRate(limit.RateOptions{PerSecond: 0.001, Burst: 1}) }
	e := newEnv(t, cov, &server.Options{Policy: &auth.Policy{Authenticate: jv.Authenticate, Commits: rate(), Calls: rate()}})
	e.srv.Hub().HandleCall("echo", func(ctx context.Context, c *viewsync.Call) (any, error) { return c.Arg, nil })
	const c = "/v1/collections/orders"
	all := map[string][]string{"read": {"*"}, "write": {"*"}, "call": {"*"}}
	nothing := map[string][]string{"read": {"other"}}
	reader := bearer(token(t, "reader", all, time.Hour))
	denied := bearer(token(t, "nobody", nothing, time.Hour))
	forged := []string{"Authorization", "Bearer " + token(t, "reader", all, time.Hour) + "x"}

	e.do(t, call{method: "PUT", path: c + "/records/o1", body: `{"owner":"ana"}`, header: reader, want: 200})
	e.do(t, call{method: "GET", path: c + "?token=" + url.QueryEscape(token(t, "q", all, time.Hour)), want: 200})
	reads := []call{
		{method: "GET", path: c},
		{method: "GET", path: c + "/version"},
		{method: "GET", path: c + "/changes?after=0"},
		{method: "GET", path: c + "/records/o1"},
		{method: "GET", path: c + "/events"},
		{method: "GET", path: c + "/stream"},
	}
	for _, r := range []call{
		{method: "PUT", path: c + "/presence", body: `{"session":"s","state":{}}`},
		{method: "DELETE", path: c + "/presence?session=s"},
	} {
		r.want, r.header = 401, nil
		e.do(t, r)
		r.header = forged
		e.do(t, r)
		r.want, r.header = 403, denied
		e.do(t, r)
	}
	for _, r := range reads {
		for _, m := range []string{"GET", "HEAD"} {
			r.method = m
			r.want, r.header = 401, nil
			e.do(t, r)
			r.header = forged
			e.do(t, r)
			r.want, r.header = 403, denied
			e.do(t, r)
		}
	}
	writes := []call{
		{method: "PUT", path: c + "/records/o2", body: `{"owner":"bo"}`},
		{method: "PATCH", path: c + "/records/o2", body: `{"owner":"cy"}`},
		{method: "DELETE", path: c + "/records/o2"},
		{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"put","id":"o3","value":1}]}`},
		{method: "POST", path: "/v1/calls/echo", body: `{"arg":1}`},
	}
	writeOnly := map[string][]string{"write": {"orders"}, "call": {"echo"}}
	for i, w := range writes {
		w.want, w.header = 401, nil
		e.do(t, w)
		w.want, w.header = 403, denied
		e.do(t, w)
		// Each write spends from its own principal's budget of one.
		tok := bearer(token(t, fmt.Sprint("writer", i), writeOnly, time.Hour))
		w.want, w.header = 200, tok
		_, body := e.do(t, w)
		if w.method == "PUT" && string(body) != `{"version":2}` {
			t.Errorf("PUT by a principal who may not read: %s, want only the version", body)
		}
		w.want = 429
		resp, _ := e.do(t, w)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 429 without Retry-After", w.method, w.path)
		}
	}
	e.do(t, call{method: "GET", path: "/v1/ws", header: wsUpgrade, want: 401})
	e.do(t, call{method: "GET", path: "/v1/ws", header: append(slices.Clone(wsUpgrade), forged...), want: 401})
	dialWS(t, e, reader...).Close()

	// Streams end with an error when their token expires.
	brief := bearer(token(t, "brief", all, 2*time.Second))
	events, _ := e.do(t, call{method: "GET", path: c + "/events", header: brief, want: 200, stream: true})
	defer events.Body.Close()
	stream, _ := e.do(t, call{method: "GET", path: c + "/stream", header: brief, want: 200, stream: true})
	defer stream.Body.Close()
	for br := bufio.NewReader(events.Body); ; {
		ev, err := readEvent(br)
		if err != nil {
			t.Fatalf("the event stream ended without an error event: %v", err)
		}
		async.checkEvent(t, ev)
		if ev.event == "error" {
			break
		}
	}
	for br := bufio.NewReader(stream.Body); ; {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("the stream ended without an error line: %v", err)
		}
		typ := serverKey(t, line)
		async.validate(t, "stream", typ, line, nil)
		if typ == "error" {
			break
		}
	}
}

// testCatchUp checks the catch-ups of a server that keeps only the
// latest commits, as every transport sends them to a client resuming from
// a cursor whose commits are gone: the changes' compacted answer, the SSE
// catchup event, the NDJSON line and the WebSocket message.
func testCatchUp(t *testing.T, cov *coverage, async *asyncSpec) {
	e := newEnv(t, cov, &server.Options{Store: store.Config{RetainCommits: 1}, BufferBytes: 1})
	const c = "/v1/collections/products"
	for i := range 40 {
		e.do(t, call{method: "PUT", path: fmt.Sprintf("%s/records/r%d", c, i%4), body: strconv.Itoa(i), want: 200})
	}
	e.do(t, call{method: "DELETE", path: c + "/records/r0", want: 200})
	_, body := e.do(t, call{method: "GET", path: c + "/changes?after=1", want: 200})
	if !strings.Contains(string(body), `"compacted":true`) {
		t.Fatalf("changes after a trimmed cursor: %s, want a catch-up", body)
	}

	events, _ := e.do(t, call{method: "GET", path: c + "/events", header: []string{"Last-Event-ID", ":1"}, want: 200, stream: true})
	defer events.Body.Close()
	if ev, err := readEvent(bufio.NewReader(events.Body)); err != nil || ev.event != "catchup" {
		t.Errorf("events resumed after a trimmed cursor: %+v, %v; want a catchup", ev, err)
	} else {
		async.checkEvent(t, ev)
	}

	stream, _ := e.do(t, call{method: "GET", path: c + "/stream?after=1", want: 200, stream: true})
	defer stream.Body.Close()
	line, err := bufio.NewReader(stream.Body).ReadBytes('\n')
	if err != nil || serverKey(t, line) != "catchup" {
		t.Errorf("a stream resumed after a trimmed cursor: %s, %v; want a catchup", line, err)
	} else {
		async.validate(t, "stream", "catchup", line, nil)
	}

	ws := dialWS(t, e)
	defer ws.Close()
	msg := `{"type":"subscribe","collection":"products","sub":"s","after":1}`
	async.validate(t, "ws", "subscribe", []byte(msg), nil)
	if err := ws.write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	b, err := ws.read()
	if err != nil || serverKey(t, b) != "catchup" {
		t.Errorf("a subscription after a trimmed cursor: %s, %v; want a catchup", b, err)
	} else {
		async.validate(t, "ws", "catchup", b, nil)
	}
}

// testClosed checks the answers of a server whose hub has closed: the
// last line of a stream open then, and 503 unavailable on every
// operation that needs the hub. (A call runs its
// handler, which answers as it can.)
func testClosed(t *testing.T, cov *coverage, async *asyncSpec) {
	e := newEnv(t, cov, nil)
	e.srv.Hub().HandleCall("echo", func(ctx context.Context, c *viewsync.Call) (any, error) { return c.Arg, nil })
	const c = "/v1/collections/products"
	e.do(t, call{method: "PUT", path: c + "/records/p1", body: `1`, want: 200})
	stream, _ := e.do(t, call{method: "GET", path: c + "/stream", want: 200, stream: true})
	defer stream.Body.Close()
	br := bufio.NewReader(stream.Body)
	if line, err := br.ReadBytes('\n'); err != nil || serverKey(t, line) != "reset" {
		t.Fatalf("the stream's first line: %s, %v", line, err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The stream's last line says why it ends.
	line, err := br.ReadBytes('\n')
	if err != nil || !strings.Contains(string(line), `"code":"unavailable"`) {
		t.Errorf("the stream's last line at shutdown: %s, %v", line, err)
	}
	async.validate(t, "stream", "error", line, nil)
	for _, cl := range []call{
		{method: "GET", path: c},
		{method: "GET", path: c + "/version"},
		{method: "GET", path: c + "/changes?after=0"},
		{method: "GET", path: c + "/records/p1"},
		{method: "PUT", path: c + "/records/p1", body: `2`},
		{method: "PATCH", path: c + "/records/p1", body: `{}`},
		{method: "DELETE", path: c + "/records/p1"},
		{method: "POST", path: c + "/commits", body: `{"ops":[{"op":"delete","id":"p1"}]}`},
		{method: "GET", path: c + "/events"},
		{method: "GET", path: c + "/stream"},
		{method: "GET", path: "/readyz"},
		{method: "GET", path: "/v1/ws", header: wsUpgrade},
	} {
		cl.want = 503
		e.do(t, cl)
		if cl.method == "GET" && cl.path != "/v1/ws" {
			// HEAD of a stream opens none: its headers are the same.
			if strings.HasSuffix(cl.path, "/events") || strings.HasSuffix(cl.path, "/stream") {
				cl.want = 200
			}
			cl.method = "HEAD"
			e.do(t, cl)
		}
	}
}

// testCoverage checks that the tests saw every documented status of
// every operation, but those unexercised lists, and none of those.
func testCoverage(t *testing.T, cov *coverage) {
	doc := loadOpenAPI(t)
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			skip := unexercised[op.OperationID]
			for code := range op.Responses.Map() {
				status, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status", method, path, code)
					continue
				}
				seen := cov.saw(op.OperationID, status)
				switch _, listed := skip[status]; {
				case !seen && !listed:
					t.Errorf("%s %s (%s): no test saw the documented status %d", method, path, op.OperationID, status)
				case seen && listed:
					t.Errorf("%s %s (%s): status %d is listed as unexercised, and a test saw it", method, path, op.OperationID, status)
				}
			}
			for status := range skip {
				if op.Responses.Status(status) == nil {
					t.Errorf("%s %s (%s): unexercised lists %d, which openapi.yaml does not document", method, path, op.OperationID, status)
				}
			}
		}
	}
	for id := range maps.Keys(unexercised) {
		found := false
		for _, item := range doc.Paths.Map() {
			for _, op := range item.Operations() {
				found = found || op.OperationID == id
			}
		}
		if !found {
			t.Errorf("unexercised names %s, which openapi.yaml does not have", id)
		}
	}
}
