package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// callAnswer is the body of a successful call.
type callAnswer struct {
	Result   json.RawMessage   `json:"result"`
	Versions map[string]uint64 `json:"versions"`
}

// handleCall registers fn under name on the server's hub.
func (s *testServer) handleCall(name string, fn viewsync.CallFunc) {
	s.t.Helper()
	if err := s.Hub.HandleCall(name, fn); err != nil {
		s.t.Fatalf("HandleCall %q: %v", name, err)
	}
}

// call posts body to POST /v1/calls/{name} as application/json.
func (s *testServer) call(name, body string) response {
	s.t.Helper()
	return s.sendJSON(http.MethodPost, "/v1/calls/"+name, body)
}

// callHead reads a collection's head through GET /v1/collections/{c}/version.
func (s *testServer) callHead(coll string) protocol.Head {
	s.t.Helper()
	var hd protocol.Head
	wantJSON(s.t, s.get("/v1/collections/"+coll+"/version"), &hd)
	return hd
}

// wantCall checks a successful call's answer: its result (as JSON) and
// versions, which must be an object even when empty.
func wantCall(t *testing.T, r response, result string, versions map[string]uint64) {
	t.Helper()
	var a callAnswer
	wantJSON(t, r, &a)
	if !sameJSON(t, a.Result, []byte(result)) {
		t.Errorf("result %s, want %s", a.Result, result)
	}
	if a.Versions == nil {
		t.Errorf("versions missing or null in %s; want an object", r.Body)
	}
	if len(a.Versions) != len(versions) || (len(versions) > 0 && !reflect.DeepEqual(a.Versions, versions)) {
		t.Errorf("versions %v, want %v", a.Versions, versions)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
}

func TestCallResult(t *testing.T) {
	s := newTestServer(t, nil)
	var got atomic.Value
	s.handleCall("echo", func(ctx context.Context, call *viewsync.Call) (any, error) {
		got.Store(string(call.Arg))
		return map[string]any{"name": call.Name, "arg": call.Arg}, nil
	})
	s.handleCall("nothing", func(ctx context.Context, call *viewsync.Call) (any, error) { return nil, nil })

	tests := []struct {
		body, arg string
	}{
		{`{"arg":{"x":1,"y":[true,null,"s"]}}`, `{"x":1,"y":[true,null,"s"]}`},
		{` { "arg" : [ 1 , 2 ] } `, `[1,2]`},
		{`{"arg":"text"}`, `"text"`},
		{`{"arg":null}`, `null`},
		{`{}`, `null`},
		{`{"arg":12.50e1}`, `12.50e1`},
	}
	for _, tt := range tests {
		r := s.call("echo", tt.body)
		wantCall(t, r, `{"name":"echo","arg":`+tt.arg+`}`, nil)
		if a := got.Load(); a != tt.arg {
			t.Errorf("body %s: the handler got arg %q, want %q (compact)", tt.body, a, tt.arg)
		}
	}

	r := s.call("nothing", `{"arg":1}`)
	wantCall(t, r, `null`, nil)
	if string(r.Body) != `{"result":null,"versions":{}}` {
		t.Errorf("body %s, want {\"result\":null,\"versions\":{}}", r.Body)
	}
}

func TestCallErrors(t *testing.T) {
	s := newTestServer(t, nil)
	s.put("products", "p1", `{"n":1}`)
	s.handleCall("refuse", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: protocol.CodeForbidden, Message: "only admins may refuse"}
	})
	s.handleCall("wrapped", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return nil, fmt.Errorf("checking stock: %w", &viewsync.CallError{Code: protocol.CodeRateLimited, Message: "slow down"})
	})
	s.handleCall("odd-code", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return nil, &viewsync.CallError{Code: "teapot", Message: "short and stout"}
	})
	s.handleCall("stale", func(ctx context.Context, call *viewsync.Call) (any, error) {
		c, err := call.Collection("products")
		if err != nil {
			return nil, err
		}
		return c.Put(ctx, "p1", json.RawMessage(`{"n":2}`), viewsync.IfVersion(99))
	})
	s.handleCall("bad-collection", func(ctx context.Context, call *viewsync.Call) (any, error) {
		_, err := call.Collection("Not A Name")
		return nil, err
	})
	s.handleCall("plain", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return nil, errors.New("database password is hunter2")
	})
	s.handleCall("unencodable", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return func() {}, nil
	})
	before := s.state("products")

	tests := []struct {
		name   string
		status int
		code   protocol.Code
		msg    string
	}{
		{"refuse", 403, protocol.CodeForbidden, "only admins may refuse"},
		{"wrapped", 429, protocol.CodeRateLimited, "slow down"},
		{"odd-code", 500, protocol.CodeInternal, "internal error"},
		{"stale", 412, protocol.CodePreconditionFailed, ""},
		{"bad-collection", 400, protocol.CodeBadRequest, ""},
		{"plain", 500, protocol.CodeInternal, "internal error"},
		{"unencodable", 500, protocol.CodeInternal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.call(tt.name, `{"arg":1}`)
			wantError(t, r, tt.status, tt.code)
			if tt.msg != "" && !strings.Contains(string(r.Body), `"message":"`+tt.msg+`"`) {
				t.Errorf("body %s, want the message %q", r.Body, tt.msg)
			}
			if strings.Contains(string(r.Body), "hunter2") {
				t.Errorf("an internal error's details reached the client: %s", r.Body)
			}
		})
	}
	if after := s.state("products"); !reflect.DeepEqual(before, after) {
		t.Errorf("failed calls changed the store: %+v, then %+v", before, after)
	}
}

// TestCallReadYourWrites checks that a call that writes answers the
// versions its commits produced, and that the collections are at those
// versions by the time the answer arrives.
func TestCallReadYourWrites(t *testing.T) {
	s := newTestServer(t, nil)
	s.put("products", "p0", `{"n":0}`)
	s.put("products", "p1", `{"n":1}`)
	s.put("orders", "o0", `{"n":0}`)
	s.put("audit", "a0", `1`)
	s.handleCall("order", func(ctx context.Context, call *viewsync.Call) (any, error) {
		products, err := call.Collection("products")
		if err != nil {
			return nil, err
		}
		orders, err := call.Collection("orders")
		if err != nil {
			return nil, err
		}
		cm, err := orders.Commit(ctx, []viewsync.Op{
			viewsync.Put("o1", json.RawMessage(`{"product":"p1"}`)),
			viewsync.Put("o2", json.RawMessage(`{"product":"p0"}`)),
		}, map[string]uint64{"o1": 0})
		if err != nil {
			return nil, err
		}
		rec, err := products.Put(ctx, "p1", json.RawMessage(`{"n":0}`))
		if err != nil {
			return nil, err
		}
		// A read after the write must not lower what the caller waits for.
		if _, err := products.Get(ctx, "p0"); err != nil {
			return nil, err
		}
		return map[string]uint64{"orders": cm.Version, "products": rec.Version}, nil
	})

	r := s.call("order", `{"arg":{"product":"p1"}}`)
	var a callAnswer
	wantJSON(t, r, &a)
	var committed map[string]uint64
	if err := json.Unmarshal(a.Result, &committed); err != nil {
		t.Fatalf("result %s: %v", a.Result, err)
	}
	if want := map[string]uint64{"orders": 2, "products": 3}; !reflect.DeepEqual(committed, want) {
		t.Fatalf("the handler's commits produced %v, want %v", committed, want)
	}
	if !reflect.DeepEqual(a.Versions, committed) {
		t.Errorf("versions %v, want the commits' versions %v", a.Versions, committed)
	}
	for coll, v := range a.Versions {
		if hd := s.callHead(coll); hd.Version != v {
			t.Errorf("GET /v1/collections/%s/version is at %d, want %d (the call's write)", coll, hd.Version, v)
		}
	}
}

// TestCallReadOnlyVersions checks that a call that only reads answers the
// current versions of what it read, so a caller waiting on them never
// hangs, and that a call touching nothing answers an empty object.
func TestCallReadOnlyVersions(t *testing.T) {
	s := newTestServer(t, nil)
	for i := range 3 {
		s.put("products", fmt.Sprintf("p%d", i), `{"n":1}`)
	}
	s.put("orders", "o1", `{}`)
	s.put("untouched", "u1", `{}`)
	s.handleCall("look", func(ctx context.Context, call *viewsync.Call) (any, error) {
		products, _ := call.Collection("products")
		rec, err := products.Get(ctx, "p1")
		if err != nil {
			return nil, err
		}
		orders, _ := call.Collection("orders")
		if _, err := orders.Snapshot(ctx); err != nil {
			return nil, err
		}
		empty, _ := call.Collection("empty")
		if _, err := empty.Head(ctx); err != nil {
			return nil, err
		}
		return rec.Value, nil
	})
	r := s.call("look", `{}`)
	wantCall(t, r, `{"n":1}`, map[string]uint64{"products": 3, "orders": 1, "empty": 0})
	for _, coll := range []string{"products", "orders", "empty"} {
		var a callAnswer
		wantJSON(t, r, &a)
		if hd := s.callHead(coll); hd.Version != a.Versions[coll] {
			t.Errorf("%s: answered version %d, GET /version says %d", coll, a.Versions[coll], hd.Version)
		}
	}

	s.handleCall("pure", func(ctx context.Context, call *viewsync.Call) (any, error) { return 42, nil })
	r = s.call("pure", `{"arg":0}`)
	wantCall(t, r, `42`, nil)
	if !strings.HasSuffix(string(r.Body), `"versions":{}}`) {
		t.Errorf("body %s, want versions {}", r.Body)
	}
}

func TestCallNames(t *testing.T) {
	s := newTestServer(t, nil)
	var calls atomic.Int32
	long := strings.Repeat("a", 64)
	for _, name := range []string{"ok", "Mixed.Case_name-1", long} {
		s.handleCall(name, func(ctx context.Context, call *viewsync.Call) (any, error) {
			calls.Add(1)
			return call.Name, nil
		})
		wantCall(t, s.call(name, `{}`), `"`+name+`"`, nil)
	}

	wantError(t, s.call("missing", `{"arg":1}`), http.StatusNotFound, protocol.CodeNotFound)
	for _, path := range []string{"bad%20name", "a%2Fb", long + "a", "caf%C3%A9", "semi%3Bcolon"} {
		wantError(t, s.call(path, `{"arg":1}`), http.StatusBadRequest, protocol.CodeBadRequest)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("handlers ran %d times, want 3", n)
	}

	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		r := s.do(m, "/v1/calls/ok", nil)
		wantError(t, r, http.StatusMethodNotAllowed, protocol.CodeMethodNotAllowed)
		if allow := r.Header.Get("Allow"); allow != "POST" {
			t.Errorf("%s: Allow %q, want POST", m, allow)
		}
	}
}

// TestCallPanic checks that a panicking handler answers 500 without its
// details and that the server goes on serving.
func TestCallPanic(t *testing.T) {
	s := newTestServer(t, nil)
	s.handleCall("boom", func(ctx context.Context, call *viewsync.Call) (any, error) {
		panic("secret internals")
	})
	s.handleCall("boom-later", func(ctx context.Context, call *viewsync.Call) (any, error) {
		return panickyResult{}, nil
	})
	s.handleCall("ok", func(ctx context.Context, call *viewsync.Call) (any, error) { return "fine", nil })
	for range 3 {
		for _, name := range []string{"boom", "boom-later"} {
			r := s.call(name, `{}`)
			wantError(t, r, http.StatusInternalServerError, protocol.CodeInternal)
			if strings.Contains(string(r.Body), "secret") || strings.Contains(string(r.Body), "panic") {
				t.Errorf("%s: the panic's details reached the client: %s", name, r.Body)
			}
			wantCall(t, s.call("ok", `{}`), `"fine"`, nil)
		}
	}
}

// panickyResult panics when encoded, after its handler has returned.
type panickyResult struct{}

func (panickyResult) MarshalJSON() ([]byte, error) { panic("secret internals while encoding") }

// TestCallTimeout checks that a call past Options.CallTimeout answers 504,
// whether its handler gives up when its context ends or ignores it.
func TestCallTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := newTestServer(t, &httpapi.Options{CallTimeout: timeout})
	s.handleCall("polite", func(ctx context.Context, call *viewsync.Call) (any, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("waiting for stock: %w", ctx.Err())
	})
	s.handleCall("own-error", func(ctx context.Context, call *viewsync.Call) (any, error) {
		<-ctx.Done()
		return nil, &viewsync.CallError{Code: protocol.CodeBadRequest, Message: "too late to complain"}
	})
	release := make(chan struct{})
	stubbornDone := make(chan error, 1)
	s.handleCall("stubborn", func(ctx context.Context, call *viewsync.Call) (any, error) {
		<-release
		stubbornDone <- ctx.Err()
		return "late", nil
	})
	s.handleCall("quick", func(ctx context.Context, call *viewsync.Call) (any, error) {
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("no deadline on the call's context")
		}
		return "on time", nil
	})

	for _, name := range []string{"polite", "own-error", "stubborn"} {
		start := time.Now()
		r := s.call(name, `{}`)
		took := time.Since(start)
		wantError(t, r, http.StatusGatewayTimeout, protocol.CodeTimeout)
		if took < timeout || took > waitTimeout {
			t.Errorf("%s: answered after %v, want about %v", name, took, timeout)
		}
	}
	close(release)
	select {
	case err := <-stubbornDone:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the stubborn handler's context: %v, want deadline exceeded", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the stubborn handler never finished")
	}
	wantCall(t, s.call("quick", `{}`), `"on time"`, nil)
}

func TestCallBadBodies(t *testing.T) {
	s := newTestServer(t, &httpapi.Options{MaxBodyBytes: 64})
	var calls atomic.Int32
	s.handleCall("echo", func(ctx context.Context, call *viewsync.Call) (any, error) {
		calls.Add(1)
		return call.Arg, nil
	})

	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        protocol.Code
	}{
		{"text/plain", "text/plain", `{"arg":1}`, 415, protocol.CodeUnsupportedMediaType},
		{"no content type", "", `{"arg":1}`, 415, protocol.CodeUnsupportedMediaType},
		{"latin-1", "application/json; charset=iso-8859-1", `{"arg":1}`, 415, protocol.CodeUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", `arg=1`, 415, protocol.CodeUnsupportedMediaType},
		{"malformed", "application/json", `{"arg":`, 400, protocol.CodeBadRequest},
		{"bad value", "application/json", `{"arg":tru}`, 400, protocol.CodeBadRequest},
		{"unknown field", "application/json", `{"arg":1,"context":2}`, 400, protocol.CodeBadRequest},
		{"only unknown field", "application/json", `{"argument":1}`, 400, protocol.CodeBadRequest},
		{"field in other case", "application/json", `{"Arg":1}`, 400, protocol.CodeBadRequest},
		{"trailing object", "application/json", `{"arg":1} {}`, 400, protocol.CodeBadRequest},
		{"trailing garbage", "application/json", `{"arg":1}x`, 400, protocol.CodeBadRequest},
		{"empty body", "application/json", ``, 400, protocol.CodeBadRequest},
		{"null body", "application/json", `null`, 400, protocol.CodeBadRequest},
		{"array body", "application/json", `[1]`, 400, protocol.CodeBadRequest},
		{"bare value", "application/json", `1`, 400, protocol.CodeBadRequest},
		{"not UTF-8", "application/json", "{\"arg\":\"\xff\"}", 400, protocol.CodeBadRequest},
		{"too large", "application/json", `{"arg":"` + strings.Repeat("x", 100) + `"}`, 413, protocol.CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kv []string
			if tt.contentType != "" {
				kv = []string{"Content-Type", tt.contentType}
			}
			wantError(t, s.do(http.MethodPost, "/v1/calls/echo", []byte(tt.body), kv...), tt.status, tt.code)
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times on refused bodies", n)
	}
	r := s.do(http.MethodPost, "/v1/calls/echo", []byte(`{"arg":{"a":"b"}}`), "Content-Type", "application/json; charset=UTF-8")
	wantCall(t, r, `{"a":"b"}`, nil)
}
