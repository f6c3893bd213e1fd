package callproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/callproxy"
	"github.com/viewsync/viewsync/internal/leakcheck"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// TestMain fails the run if a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	leakcheck.Main(m)
}

// waitTimeout bounds waits for something that must happen; it detects
// hangs, it is not a performance bound.
const waitTimeout = 20 * time.Second

// newHub returns a hub on a real bbolt store in a temporary directory,
// closed when the test ends.
func newHub(t *testing.T) *viewsync.Hub {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	hub, err := viewsync.New(st)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	t.Cleanup(func() { hub.Close() })
	return hub
}

// newBackend starts a backend serving fn, closed when the test ends.
func newBackend(t *testing.T, fn http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(fn)
	t.Cleanup(srv.Close)
	return srv
}

// answer writes a backend's answer with the given status and body.
func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// proxyHub returns a hub whose call fallback is a proxy to backendURL.
func proxyHub(t *testing.T, backendURL string, opts *callproxy.Options) *viewsync.Hub {
	t.Helper()
	fn, err := callproxy.New(backendURL, opts)
	if err != nil {
		t.Fatalf("callproxy.New(%q): %v", backendURL, err)
	}
	hub := newHub(t)
	hub.HandleCallFallback(fn)
	return hub
}

// wantCallError checks that err is (or wraps) a *viewsync.CallError with
// code and a message, and returns the message.
func wantCallError(t *testing.T, err error, code protocol.Code) string {
	t.Helper()
	var ce *viewsync.CallError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *viewsync.CallError; want code %q", err, err, code)
	}
	if ce.Code != code {
		t.Errorf("code %q (message %q), want %q", ce.Code, ce.Message, code)
	}
	if strings.TrimSpace(ce.Message) == "" {
		t.Errorf("code %q with an empty message", ce.Code)
	}
	if got := viewsync.ErrorCode(err); got != code {
		t.Errorf("viewsync.ErrorCode maps it to %q, want %q", got, code)
	}
	return ce.Message
}

// seenRequest is what a backend received.
type seenRequest struct {
	Method, ContentType, Accept, Secret string
	User, Password                      string
	Body                                callproxy.Request
	DecodeErr                           error
}

// recordingBackend answers every request with status and body and sends
// what it received on the returned channel.
func recordingBackend(t *testing.T, status int, body string) (*httptest.Server, <-chan seenRequest) {
	t.Helper()
	seen := make(chan seenRequest, 16)
	srv := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		s := seenRequest{
			Method: r.Method, ContentType: r.Header.Get("Content-Type"),
			Accept: r.Header.Get("Accept"), Secret: r.Header.Get("X-Backend-Secret"),
		}
		s.User, s.Password, _ = r.BasicAuth()
		// Strictly the contract's shape: both fields, nothing else.
		var fields map[string]json.RawMessage
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		s.DecodeErr = dec.Decode(&fields)
		if s.DecodeErr == nil {
			for k := range fields {
				if k != "name" && k != "arg" {
					s.DecodeErr = fmt.Errorf("unexpected field %q", k)
				}
			}
			if _, ok := fields["arg"]; !ok {
				s.DecodeErr = errors.New(`no "arg"`)
			}
			if s.DecodeErr == nil {
				s.DecodeErr = json.Unmarshal(fields["name"], &s.Body.Name)
			}
			s.Body.Arg = fields["arg"]
		}
		seen <- s
		answer(w, status, body)
	})
	return srv, seen
}

func TestProxySuccess(t *testing.T) {
	srv, seen := recordingBackend(t, http.StatusOK,
		`{"result":{"total":12.5,"items":["a","b"]},"versions":{"orders":7,"products":2}}`)
	hub := proxyHub(t, srv.URL+"/viewsync/calls?v=1", &callproxy.Options{
		Header: http.Header{"X-Backend-Secret": {"s3cret"}, "content-type": {"text/plain"}},
	})

	res, err := hub.Call(t.Context(), "checkout", json.RawMessage(`{ "cart" : [1, 2] }`))
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if string(res.Result) != `{"total":12.5,"items":["a","b"]}` {
		t.Errorf("result %s, want the backend's", res.Result)
	}
	if want := map[string]uint64{"orders": 7, "products": 2}; !reflect.DeepEqual(res.Versions, want) {
		t.Errorf("versions %v, want the backend's %v", res.Versions, want)
	}
	s := <-seen
	if s.Method != http.MethodPost || s.ContentType != "application/json" || s.Accept != "application/json" {
		t.Errorf("request %s with Content-Type %q, Accept %q; want POST, application/json, application/json", s.Method, s.ContentType, s.Accept)
	}
	if s.Secret != "s3cret" {
		t.Errorf("X-Backend-Secret %q, want the one from Options.Header", s.Secret)
	}
	if s.DecodeErr != nil || s.Body.Name != "checkout" || string(s.Body.Arg) != `{"cart":[1,2]}` {
		t.Errorf("body %+v (%v); want {\"name\":\"checkout\",\"arg\":{\"cart\":[1,2]}}", s.Body, s.DecodeErr)
	}

	// No arg, a null result, no versions.
	srv2, seen2 := recordingBackend(t, http.StatusCreated, `{"result":null}`)
	hub2 := proxyHub(t, srv2.URL, nil)
	res, err = hub2.Call(t.Context(), "ping", nil)
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if string(res.Result) != "null" || res.Versions == nil || len(res.Versions) != 0 {
		t.Errorf("answer %s %v, want null and no versions", res.Result, res.Versions)
	}
	if s := <-seen2; s.DecodeErr != nil || s.Body.Name != "ping" || string(s.Body.Arg) != "null" {
		t.Errorf("body %+v (%v); want {\"name\":\"ping\",\"arg\":null}", s.Body, s.DecodeErr)
	}
}

// TestProxyBasicAuth checks that credentials in the backend URL are sent
// as Basic auth.
func TestProxyBasicAuth(t *testing.T) {
	srv, seen := recordingBackend(t, http.StatusOK, `{"result":1}`)
	hub := proxyHub(t, strings.Replace(srv.URL, "http://", "http://viewsync:pa55@", 1), nil)
	if _, err := hub.Call(t.Context(), "x", nil); err != nil {
		t.Fatalf("call: %v", err)
	}
	if s := <-seen; s.User != "viewsync" || s.Password != "pa55" {
		t.Errorf("basic auth %q:%q, want viewsync:pa55", s.User, s.Password)
	}
}

// TestProxyRefusal checks that a 4xx with the contract's error body is
// relayed with its code and message.
func TestProxyRefusal(t *testing.T) {
	tests := []struct {
		status int
		body   string
		code   protocol.Code
		msg    string
	}{
		{404, `{"error":{"code":"not_found","message":"no such product"}}`, protocol.CodeNotFound, "no such product"},
		{400, `{"error":{"code":"bad_request","message":"qty must be positive"}}`, protocol.CodeBadRequest, "qty must be positive"},
		{403, `{"error":{"code":"forbidden","message":"not yours"}}`, protocol.CodeForbidden, "not yours"},
		{412, `{"error":{"code":"precondition_failed","message":"changed meanwhile"}}`, protocol.CodePreconditionFailed, "changed meanwhile"},
		{429, `{"error":{"code":"rate_limited","message":"later"},"retry":3}`, protocol.CodeRateLimited, "later"},
		{422, `{"error":{"code":"bad_request","message":""}}`, protocol.CodeBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, tt.code), func(t *testing.T) {
			srv := newBackend(t, func(w http.ResponseWriter, r *http.Request) { answer(w, tt.status, tt.body) })
			hub := proxyHub(t, srv.URL, nil)
			_, err := hub.Call(t.Context(), "buy", json.RawMessage(`1`))
			msg := wantCallError(t, err, tt.code)
			if tt.msg != "" && msg != tt.msg {
				t.Errorf("message %q, want the backend's %q", msg, tt.msg)
			}
		})
	}
}

// TestProxyBadGateway checks that a backend not keeping the contract is a
// 502 whose message tells what went wrong and hides the backend's own.
func TestProxyBadGateway(t *testing.T) {
	redirected := &atomic.Int32{}
	target := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		answer(w, 200, `{"result":"followed"}`)
	})
	tests := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"500 with an error body", 500, `{"error":{"code":"internal","message":"db password hunter2 rejected"}}`, "500"},
		{"503", 503, `unavailable`, "503"},
		{"502", 502, ``, "502"},
		{"redirect", 307, ``, "307"},
		{"HTML", 200, `<html><body>Welcome</body></html>`, "not the JSON object"},
		{"truncated JSON", 200, `{"result":{"a":`, "not the JSON object"},
		{"no result", 200, `{"value":1}`, `lacks "result"`},
		{"bare result", 200, `42`, "not the JSON object"},
		{"null body", 200, `null`, `lacks "result"`},
		{"empty 204", 204, ``, "not the JSON object"},
		{"trailing data", 200, `{"result":1} {"result":2}`, "trailing data"},
		{"negative version", 200, `{"result":1,"versions":{"orders":-1}}`, "not the JSON object"},
		{"fractional version", 200, `{"result":1,"versions":{"orders":1.5}}`, "not the JSON object"},
		{"bad collection", 200, `{"result":1,"versions":{"Orders!":1}}`, "bad collection"},
		{"4xx without error body", 404, `404 page not found`, "without the contract's error body"},
		{"4xx with a server code", 400, `{"error":{"code":"internal","message":"x"}}`, "not a client error code"},
		{"4xx with an unknown code", 409, `{"error":{"code":"conflict","message":"x"}}`, "not a client error code"},
		{"4xx with a null error", 400, `{"error":null}`, "without the contract's error body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.status == 307 {
					http.Redirect(w, r, target.URL, tt.status)
					return
				}
				answer(w, tt.status, tt.body)
			})
			hub := proxyHub(t, srv.URL, nil)
			res, err := hub.Call(t.Context(), "buy", json.RawMessage(`1`))
			if err == nil {
				t.Fatalf("answer %s %v, want an error", res.Result, res.Versions)
			}
			msg := wantCallError(t, err, protocol.CodeBadGateway)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not say %q", msg, tt.want)
			}
			if strings.Contains(msg, "hunter2") || strings.Contains(msg, srv.URL) {
				t.Errorf("message %q tells the caller the backend's internals", msg)
			}
		})
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("the proxy followed a redirect %d times", n)
	}
}

func TestProxyBackendDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	hub := proxyHub(t, url, nil)
	start := time.Now()
	_, err := hub.Call(t.Context(), "buy", nil)
	msg := wantCallError(t, err, protocol.CodeBadGateway)
	if !strings.Contains(msg, "unreachable") || strings.Contains(msg, url) {
		t.Errorf("message %q; want it to say the backend is unreachable, without its address", msg)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q does not carry the cause for the logs", err)
	}
	if took := time.Since(start); took > waitTimeout {
		t.Errorf("took %v", took)
	}
}

// slowBackend holds every request until the client gives up.
func slowBackend(t *testing.T) *httptest.Server {
	return newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		// Only once the body is read does the server watch the connection
		// and end r.Context() when the client hangs up.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(waitTimeout):
			answer(w, 200, `{"result":"too late"}`)
		}
	})
}

func TestProxySlowBackend(t *testing.T) {
	const timeout = 100 * time.Millisecond
	srv := slowBackend(t)
	hub := proxyHub(t, srv.URL, &callproxy.Options{Timeout: timeout})
	start := time.Now()
	_, err := hub.Call(t.Context(), "buy", nil)
	took := time.Since(start)
	msg := wantCallError(t, err, protocol.CodeTimeout)
	if !strings.Contains(msg, timeout.String()) {
		t.Errorf("message %q does not name the timeout", msg)
	}
	if took < timeout || took > waitTimeout {
		t.Errorf("gave up after %v, want about %v", took, timeout)
	}

	// A caller's own deadline, shorter than the proxy's, is the caller's
	// error, not the proxy's.
	hub = proxyHub(t, srv.URL, &callproxy.Options{Timeout: waitTimeout})
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	_, err = hub.Call(ctx, "buy", nil)
	var ce *viewsync.CallError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ce) {
		t.Errorf("error %v, want the caller's context.DeadlineExceeded", err)
	}
	if code := viewsync.ErrorCode(err); code != protocol.CodeTimeout {
		t.Errorf("code %q, want timeout", code)
	}

	// A body that starts in time but does not finish is a timeout too.
	trickle := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result":`)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	hub = proxyHub(t, trickle.URL, &callproxy.Options{Timeout: timeout})
	_, err = hub.Call(t.Context(), "buy", nil)
	wantCallError(t, err, protocol.CodeTimeout)
}

func TestProxyOversize(t *testing.T) {
	const limit = 1024
	// An answer of exactly limit bytes.
	exact := `{"result":"` + strings.Repeat("x", limit-len(`{"result":""}`)) + `"}`
	big := `{"result":"` + strings.Repeat("x", 4*limit) + `"}`
	tests := []struct {
		name    string
		body    string
		chunked bool
		ok      bool
	}{
		{"at the limit", exact, false, true},
		{"at the limit, chunked", exact, true, true},
		{"over, with Content-Length", big, false, false},
		{"over, chunked", big, true, false},
		{"one byte over, chunked", exact + " ", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if !tt.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(tt.body)))
				}
				for i := 0; i < len(tt.body); i += 100 {
					io.WriteString(w, tt.body[i:min(i+100, len(tt.body))])
					if tt.chunked {
						http.NewResponseController(w).Flush()
					}
				}
			})
			hub := proxyHub(t, srv.URL, &callproxy.Options{MaxResponseBytes: limit})
			res, err := hub.Call(t.Context(), "report", nil)
			if tt.ok {
				if err != nil || len(res.Result) != limit-len(`{"result":}`) {
					t.Fatalf("answer of %d bytes: %v; want it relayed", len(tt.body), err)
				}
				return
			}
			msg := wantCallError(t, err, protocol.CodeBadGateway)
			if !strings.Contains(msg, fmt.Sprint(limit)) {
				t.Errorf("message %q does not name the limit", msg)
			}
		})
	}
}

func TestNew(t *testing.T) {
	bad := []string{
		"", "backend:8080", "ftp://backend/calls", "http://", "http:///calls", "https://:8080/x",
		"http://backend/calls#frag", "://backend", "http://us er:hunter2@[::1/x", "file:///etc/passwd",
	}
	for _, u := range bad {
		if fn, err := callproxy.New(u, nil); err == nil || fn != nil {
			t.Errorf("New(%q) = %v, %v; want an error", u, fn != nil, err)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q): error %q shows the password", u, err)
		}
	}
	for _, o := range []*callproxy.Options{{Timeout: -1}, {MaxResponseBytes: -1}} {
		if _, err := callproxy.New("http://backend/calls", o); err == nil {
			t.Errorf("New with %+v: no error", *o)
		}
	}
	for _, u := range []string{"http://backend/calls", "https://user:pw@backend:8443/calls?x=1", "HTTP://[::1]:9/x"} {
		if _, err := callproxy.New(u, &callproxy.Options{}); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

// viewsyncServer serves the HTTP API of hub, stopped when the test ends.
func viewsyncServer(t *testing.T, hub *viewsync.Hub, opts *httpapi.Options) *httptest.Server {
	t.Helper()
	h, err := httpapi.New(hub, opts)
	if err != nil {
		t.Fatalf("httpapi.New: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// post sends body as application/json and returns the status and body.
func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	return send(t, http.MethodPost, url, body)
}

func send(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// wantErrorBody checks the contract's error body with code.
func wantErrorBody(t *testing.T, status int, body []byte, code protocol.Code) {
	t.Helper()
	var eb protocol.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("body %s is not the contract's error: %v", body, err)
	}
	if eb.Error.Code != code || status != code.Status() {
		t.Errorf("%d %s, want %d %s", status, body, code.Status(), code)
	}
}

// TestEndToEnd runs calls through POST /v1/calls/{name} of a real server
// whose fallback is the proxy, to a backend that writes through the same
// server's HTTP API and reports the version of its write.
func TestEndToEnd(t *testing.T) {
	hub := newHub(t)
	api := viewsyncServer(t, hub, &httpapi.Options{CallTimeout: 5 * time.Second})
	slow := slowBackend(t)

	backend := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		var req callproxy.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			answer(w, 400, string(protocol.MarshalError(protocol.CodeBadRequest, err.Error())))
			return
		}
		switch req.Name {
		case "place-order":
			// The backend writes through viewsync's own HTTP API.
			st, b := send(t, http.MethodPut, api.URL+"/v1/collections/orders/records/o1", string(req.Arg))
			if st != 200 {
				answer(w, 500, string(b))
				return
			}
			var wr protocol.RecordResponse
			if err := json.Unmarshal(b, &wr); err != nil {
				answer(w, 500, `{}`)
				return
			}
			answer(w, 200, fmt.Sprintf(`{"result":{"order":"o1"},"versions":{"orders":%d}}`, wr.Version))
		case "secret":
			answer(w, 403, `{"error":{"code":"forbidden","message":"not for you"}}`)
		default:
			answer(w, 404, `{"error":{"code":"not_found","message":"no such call"}}`)
		}
	})
	fn, err := callproxy.New(backend.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	hub.HandleCallFallback(fn)
	if err := hub.HandleCall("local", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return "from Go", nil
	}); err != nil {
		t.Fatal(err)
	}
	// Move orders along first, so its versions are not trivially 1.
	orders, _ := hub.Collection("orders")
	for i := range 3 {
		if _, err := orders.Put(t.Context(), fmt.Sprintf("old%d", i), json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
	}

	status, body := post(t, api.URL+"/v1/calls/place-order", `{"arg":{"qty":2}}`)
	if status != 200 {
		t.Fatalf("place-order: %d %s", status, body)
	}
	var ans struct {
		Result   json.RawMessage   `json:"result"`
		Versions map[string]uint64 `json:"versions"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	if string(ans.Result) != `{"order":"o1"}` || !reflect.DeepEqual(ans.Versions, map[string]uint64{"orders": 4}) {
		t.Errorf("answer %s, want the backend's result and versions {\"orders\":4}", body)
	}
	status, body = send(t, http.MethodGet, api.URL+"/v1/collections/orders/version", "")
	var hd protocol.Head
	if err := json.Unmarshal(body, &hd); status != 200 || err != nil || hd.Version != ans.Versions["orders"] {
		t.Errorf("orders/version: %d %s, want version %d", status, body, ans.Versions["orders"])
	}
	rec, err := orders.Get(t.Context(), "o1")
	if err != nil || !bytes.Equal(rec.Value, []byte(`{"qty":2}`)) {
		t.Errorf("record o1: %s %v; want the arg the backend wrote", rec.Value, err)
	}

	status, body = post(t, api.URL+"/v1/calls/local", `{}`)
	if status != 200 || string(body) != `{"result":"from Go","versions":{}}` {
		t.Errorf("local: %d %s; want the Go handler's answer", status, body)
	}
	status, body = post(t, api.URL+"/v1/calls/secret", `{"arg":1}`)
	wantErrorBody(t, status, body, protocol.CodeForbidden)
	status, body = post(t, api.URL+"/v1/calls/nope", `{"arg":1}`)
	wantErrorBody(t, status, body, protocol.CodeNotFound)

	// A backend that is down, and one that is too slow.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if fn, err = callproxy.New(down.URL, nil); err != nil {
		t.Fatal(err)
	}
	hub.HandleCallFallback(fn)
	status, body = post(t, api.URL+"/v1/calls/place-order", `{"arg":{}}`)
	wantErrorBody(t, status, body, protocol.CodeBadGateway)

	if fn, err = callproxy.New(slow.URL, &callproxy.Options{Timeout: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	hub.HandleCallFallback(fn)
	status, body = post(t, api.URL+"/v1/calls/place-order", `{"arg":{}}`)
	wantErrorBody(t, status, body, protocol.CodeTimeout)
}

// stepSource is a viewsync.Source whose positions are "step-N": Step
// feeds its collection one commit and applies the next step.
type stepSource struct {
	feed    *viewsync.Feed
	mu      chan struct{} // a one-slot lock
	step    int
	changed chan struct{}
}

func newStepSource(t *testing.T, hub *viewsync.Hub, coll string) *stepSource {
	t.Helper()
	f, err := hub.Feed(coll, "steps", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return &stepSource{feed: f, mu: make(chan struct{}, 1), changed: make(chan struct{})}
}

func (s *stepSource) Step(t *testing.T, id string) {
	t.Helper()
	if _, err := s.feed.Commit(t.Context(), []viewsync.Op{viewsync.Put(id, json.RawMessage(`1`))}, nil); err != nil {
		t.Fatal(err)
	}
	s.mu <- struct{}{}
	s.step++
	close(s.changed)
	s.changed = make(chan struct{})
	<-s.mu
}

func (s *stepSource) Await(ctx context.Context, pos string) error {
	var want int
	if _, err := fmt.Sscanf(pos, "step-%d", &want); err != nil {
		return fmt.Errorf("%w: %q", viewsync.ErrBadPosition, pos)
	}
	for {
		s.mu <- struct{}{}
		reached, ch := s.step >= want, s.changed
		<-s.mu
		if reached {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (s *stepSource) Collections() []string { return []string{s.feed.Collection()} }

// TestProxyAwait: a backend that wrote to a source's system answers the
// position its write got ("await"); the proxy answers the call once the
// source has applied it, with the source's collections' versions then.
// An "await" that cannot be waited for is 502; a position the source does
// not reach within its await timeout 504.
func TestProxyAwait(t *testing.T) {
	var body atomic.Value
	answered := make(chan struct{}, 1)
	srv := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		answer(w, 200, body.Load().(string))
		select {
		case answered <- struct{}{}:
		default:
		}
	})
	hub := proxyHub(t, srv.URL, nil)
	src := newStepSource(t, hub, "products")
	if err := hub.AddSource("steps", src, nil); err != nil {
		t.Fatal(err)
	}
	src.Step(t, "a")

	body.Store(`{"result":"ok","await":{"position":"step-2"}}`)
	type answer struct {
		res viewsync.CallResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := hub.Call(context.Background(), "write", nil)
		done <- answer{res, err}
	}()
	<-answered
	select {
	case a := <-done:
		t.Fatalf("answered %s %v, %v before the source applied step 2", a.res.Result, a.res.Versions, a.err)
	default:
	}
	src.Step(t, "b")
	a := <-done
	if a.err != nil {
		t.Fatalf("call: %v", a.err)
	}
	if string(a.res.Result) != `"ok"` || a.res.Versions["products"] != 2 {
		t.Errorf("answer %s %v, want \"ok\" with products at 2", a.res.Result, a.res.Versions)
	}

	src.Step(t, "c")
	body.Store(`{"result":1,"versions":{"orders":4},"await":{"source":"steps","position":"step-3","collections":["products","other"]}}`)
	res, err := hub.Call(t.Context(), "write", nil)
	if want := map[string]uint64{"orders": 4, "products": 3, "other": 0}; err != nil || !reflect.DeepEqual(res.Versions, want) {
		t.Errorf("with versions and named collections: %v, %v; want %v", res.Versions, err, want)
	}

	for _, tc := range []struct{ body, want string }{
		{`{"result":1,"await":{}}`, `"await" without "position"`},
		{`{"result":1,"await":{"source":"nats","position":"step-1"}}`, "cannot be waited for"},
		{`{"result":1,"await":{"position":"16/B374D848"}}`, "cannot be waited for"},
		{`{"result":1,"await":{"position":"step-1","collections":["Bad!"]}}`, "cannot be waited for"},
		{`{"result":1,"await":"step-1"}`, "not the JSON object"},
	} {
		body.Store(tc.body)
		_, err := hub.Call(t.Context(), "write", nil)
		if msg := wantCallError(t, err, protocol.CodeBadGateway); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q does not say %q", tc.body, msg, tc.want)
		}
	}

	// The same source under another name, with a short timeout.
	if err := hub.AddSource("quick", src, &viewsync.SourceOptions{AwaitTimeout: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	body.Store(`{"result":1,"await":{"source":"quick","position":"step-99"}}`)
	_, err = hub.Call(t.Context(), "write", nil)
	if msg := wantCallError(t, err, protocol.CodeTimeout); !errors.Is(err, viewsync.ErrAwaitTimeout) || !strings.Contains(msg, "step-99") {
		t.Errorf("a position never reached: %v, want ErrAwaitTimeout naming it", err)
	}
}
