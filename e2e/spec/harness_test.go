package spec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/viewsync/viewsync/docs"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/server"
)

// wait bounds every wait of these tests: a hang guard.
const wait = 20 * time.Second

// loadOpenAPI loads docs/openapi.yaml, as the server embeds it, and
// validates it as an OpenAPI document.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(docs.OpenAPI)
	if err != nil {
		t.Fatalf("loading openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// coverage records which documented statuses of which operations the
// tests saw the server answer.
type coverage struct {
	mu   sync.Mutex
	seen map[string]map[int]bool // operationId → status → seen
}

func (c *coverage) add(op string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]map[int]bool{}
	}
	if c.seen[op] == nil {
		c.seen[op] = map[int]bool{}
	}
	c.seen[op][status] = true
}

func (c *coverage) saw(op string, status int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[op][status]
}

// env is one real server, over a bbolt store in a temporary folder, with
// the spec's router pointed at it.
type env struct {
	srv    *server.Server
	url    string
	router routers.Router
	client *http.Client
	cov    *coverage
}

// newEnv opens a server with opts on a fresh store and serves its
// Handler; the test's cleanup stops both.
func newEnv(t *testing.T, cov *coverage, opts *server.Options) *env {
	t.Helper()
	srv, err := server.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	doc := loadOpenAPI(t)
	doc.Servers = openapi3.Servers{{URL: ts.URL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	// Each request gets its own connection: a stream or an upgrade
	// never leaves one behind for the next request. Requests are bounded
	// by their context (a client Timeout would hide an upgraded
	// connection behind a body that cannot be written).
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return &env{srv: srv, url: ts.URL, router: router, client: client, cov: cov}
}

// call is one request of a test and what it must get.
type call struct {
	method string
	// path is the request's path and query.
	path string
	body string
	// header holds the request's headers, in pairs. A body without a
	// Content-Type here is sent as application/json.
	header []string
	// want is the status the server must answer.
	want int
	// offSpec marks a request that breaks the spec on purpose (a bad
	// input the spec's parameters or body schemas exclude): validating it
	// must fail. Every other request must validate.
	offSpec bool
	// stream leaves the body of a 200 (a stream) or a 101 (an upgraded
	// connection) open, for the caller to read and close; only its status
	// and headers are validated.
	stream bool
}

// do sends c, checks the request and the answer against the spec, and
// returns the answer with its body read (or, for a stream, open).
func (e *env) do(t *testing.T, c call) (*http.Response, []byte) {
	t.Helper()
	req := e.request(t, c)
	in := e.validateRequest(t, c, req)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	var body []byte
	streaming := c.stream && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusSwitchingProtocols)
	if !streaming {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", c.method, c.path, err)
		}
	}
	if resp.StatusCode != c.want {
		t.Errorf("%s %s: status %d, want %d; body %.300s", c.method, c.path, resp.StatusCode, c.want, body)
	}
	if in != nil {
		e.validateResponse(t, c, in, resp.StatusCode, resp.Header, body, streaming)
	}
	return resp, body
}

// request builds the HTTP request of c.
func (e *env) request(t *testing.T, c call) *http.Request {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, c.method, e.url+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(c.header); i += 2 {
		req.Header.Add(c.header[i], c.header[i+1])
	}
	if c.body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// options are the validator's options: the server's answers are held to
// the spec's statuses (an undocumented one fails), and security is the
// server's to check.
func options(excludeBody bool) *openapi3filter.Options {
	return &openapi3filter.Options{
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		IncludeResponseStatus: true,
		ExcludeResponseBody:   excludeBody,
	}
}

// validateRequest finds req's operation in the spec and validates req
// against it, as c says it must or must not. It returns the input of the
// answer's validation, nil when the spec has no route for req.
func (e *env) validateRequest(t *testing.T, c call, req *http.Request) *openapi3filter.RequestValidationInput {
	t.Helper()
	route, params, err := e.router.FindRoute(req)
	if err != nil {
		t.Errorf("%s %s: the spec has no operation for it: %v", c.method, c.path, err)
		return nil
	}
	// The validator reads the body; it gets a copy.
	vreq := req.Clone(context.Background())
	if c.body != "" {
		vreq.Body = io.NopCloser(strings.NewReader(c.body))
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: options(false)}
	err = openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case c.offSpec && err == nil:
		t.Errorf("%s %s: the spec takes this request, which is meant to break it", c.method, c.path)
	case !c.offSpec && err != nil:
		t.Errorf("%s %s: the request breaks the spec: %v", c.method, c.path, err)
	}
	return in
}

// validateResponse validates an answer against the operation of in, and
// the code of an error body against its status; it records the status as
// covered.
func (e *env) validateResponse(t *testing.T, c call, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte, streaming bool) {
	t.Helper()
	ct := header.Get("Content-Type")
	// A stream's body is read by the test, a HEAD answer has none, and a
	// body of a type the validator cannot decode (JavaScript) is not
	// checked; each is held to its media type below.
	exclude := streaming || c.method == http.MethodHead || (len(body) > 0 && openapi3filter.RegisteredBodyDecoder(mediaType(ct)) == nil)
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                options(exclude),
	}
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		t.Errorf("%s %s: the answer %d breaks the spec: %v; body %.300s", c.method, c.path, status, err, body)
	}
	if exclude && !streaming && c.method != http.MethodHead && ct != "" {
		// The body is not checked: its media type must still be the
		// documented one.
		resp := in.Route.Operation.Responses.Status(status)
		if resp == nil || resp.Value == nil || resp.Value.Content.Get(mediaType(ct)) == nil {
			t.Errorf("%s %s: answer %d of type %q, which the spec does not document", c.method, c.path, status, ct)
		}
	}
	if status >= 400 && mediaType(ct) == "application/json" && c.method != http.MethodHead {
		var eb protocol.ErrorBody
		if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
			t.Errorf("%s %s: answer %d without the error body: %s", c.method, c.path, status, body)
		} else if want := errorStatus(eb.Error.Code, status); want != status {
			t.Errorf("%s %s: status %d for code %q, which goes with %d", c.method, c.path, status, eb.Error.Code, want)
		}
	}
	e.cov.add(in.Route.Operation.OperationID, status)
}

// errorStatus is the status that goes with code: Code.Status, but for
// the two answers that keep a code under another status, a refused
// WebSocket upgrade (426, bad_request) and a body that came too slowly
// (408, timeout).
func errorStatus(code protocol.Code, status int) int {
	switch {
	case status == http.StatusUpgradeRequired && code == protocol.CodeBadRequest,
		status == http.StatusRequestTimeout && code == protocol.CodeTimeout:
		return status
	}
	return code.Status()
}

// mediaType returns a Content-Type's media type, without parameters.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}
