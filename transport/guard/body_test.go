package guard

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// bodyServer serves h behind Bodies with opts, on a Listener.
func bodyServer(t *testing.T, opts *BodyOptions, h http.Handler) *testServer {
	t.Helper()
	b, err := Bodies(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, nil, b, nil)
}

// TestBodiesRefuseTransferEncoding: a request with both Content-Length and
// Transfer-Encoding hides a second request in its body (for a server that
// honours Transfer-Encoding, as Go's does). It is answered 400 and its
// connection closed: neither it nor the hidden request reaches the handler.
func TestBodiesRefuseTransferEncoding(t *testing.T) {
	var calls atomic.Int32
	s := bodyServer(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("ok"))
	}))
	hidden := "PUT /hidden HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}"
	body := "0\r\n\r\n" + hidden
	for _, head := range []string{
		fmt.Sprintf("POST /outer HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n", len(body)),
		"POST /outer HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		c := s.dial("10.0.0.1")
		c.send(head + body)
		resp, b := c.response()
		wantError(t, resp, b, http.StatusBadRequest, "bad_request")
		if msg := errorMessage(b); msg != TransferEncodingRefused {
			t.Errorf("message %q, want %q", msg, TransferEncodingRefused)
		}
		if !c.closed() {
			t.Error("the connection stays open after a refused Transfer-Encoding")
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
}

// TestBodiesTooLarge: a declared body over the limit is answered 413 at
// once, without a 100 Continue, before anything reads it.
func TestBodiesTooLarge(t *testing.T) {
	var calls atomic.Int32
	s := bodyServer(t, &BodyOptions{MaxBytes: 100}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
	}))
	c := s.dial("10.0.0.1")
	c.send("PUT /x HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
	resp, b := c.response()
	wantError(t, resp, b, http.StatusRequestEntityTooLarge, "too_large")
	if !c.closed() {
		t.Error("the connection stays open")
	}
	// At the limit is fine.
	c = s.dial("10.0.0.1")
	c.send("PUT /x HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := c.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("at the limit: %q, %v; want 100 Continue", line, err)
	}
	c.br.ReadString('\n')
	c.send(strings.Repeat("x", 100))
	if resp, _ := c.response(); resp.StatusCode != http.StatusOK {
		t.Errorf("at the limit: %d", resp.StatusCode)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the handler ran %d times, want 1", n)
	}
}

// TestBodiesTimeout: a body that does not arrive in time fails the
// handler's read; the answer is 408 (whatever the handler answers) and the
// connection is closed.
func TestBodiesTimeout(t *testing.T) {
	for _, answers := range []bool{true, false} {
		t.Run(fmt.Sprintf("handler answers %v", answers), func(t *testing.T) {
			readErr := make(chan error, 1)
			s := bodyServer(t, &BodyOptions{Timeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.ReadAll(r.Body)
				readErr <- err
				if err != nil && answers {
					w.Header().Set("Etag", `"1"`)
					http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
				}
			}))
			c := s.dial("10.0.0.1")
			c.send("PUT /x HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nx")
			resp, b := c.response()
			wantError(t, resp, b, http.StatusRequestTimeout, "timeout")
			if resp.Header.Get("Etag") != "" {
				t.Error("the handler's ETag was kept")
			}
			if !c.closed() {
				t.Error("the connection stays open")
			}
			if err := <-readErr; err == nil || !strings.Contains(err.Error(), "not received within") {
				t.Errorf("the handler's read error: %v", err)
			}
		})
	}
}

// TestBodiesDeadlineLifted: once a body is read whole, its deadline no
// longer holds: a handler that takes longer afterwards (a call, a
// long-poll) keeps its context and answers.
func TestBodiesDeadlineLifted(t *testing.T) {
	// Long enough that the server lifts the deadline after reading the
	// body before it expires, however busy the machine.
	const timeout = time.Second
	s := bodyServer(t, &BodyOptions{Timeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("reading the body: %v", err)
		}
		select {
		case <-r.Context().Done():
			t.Error("the request's context ended after its body was read")
		case <-time.After(timeout + 500*time.Millisecond):
		}
		w.Write([]byte("done"))
	}))
	c := s.dial("10.0.0.1")
	c.send("POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
	if resp, b := c.response(); resp.StatusCode != http.StatusOK || string(b) != "done" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	// The connection is reused, with no deadline left behind.
	c.send("POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{}")
	if resp, b := c.response(); resp.StatusCode != http.StatusOK || string(b) != "done" {
		t.Fatalf("second request: %d %q", resp.StatusCode, b)
	}
}

// TestBodiesLeaveBodilessRequests: requests without a body (streams,
// upgrades, long-polls) reach the handler with the server's own
// ResponseWriter and no deadline.
func TestBodiesLeaveBodilessRequests(t *testing.T) {
	const timeout = 50 * time.Millisecond
	s := bodyServer(t, &BodyOptions{Timeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			t.Errorf("%T is not the server's ResponseWriter", w)
		}
		select {
		case <-r.Context().Done():
			t.Error("a request without a body lost its context")
		case <-time.After(timeout + 500*time.Millisecond):
		}
		w.Write([]byte("done"))
	}))
	c := s.dial("10.0.0.1")
	c.get("/events")
	if resp, b := c.response(); resp.StatusCode != http.StatusOK || string(b) != "done" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

// TestBodiesWithoutDeadlines: a ResponseWriter that cannot set deadlines
// (a recorder) serves the request as is.
func TestBodiesWithoutDeadlines(t *testing.T) {
	b, err := Bodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Write(body)
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	b.ServeHTTP(rec, httptest.NewRequest("PUT", "/x", strings.NewReader("{}")))
	if rec.Code != http.StatusOK || rec.Body.String() != "{}" {
		t.Errorf("%d %q", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("PUT", "/x", strings.NewReader("{}"))
	req.TransferEncoding = []string{"chunked"}
	b.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !rec.Result().Close && rec.Header().Get("Connection") != "close" {
		t.Errorf("chunked on a recorder: %d %v", rec.Code, rec.Header())
	}
	if _, err := Bodies(b, &BodyOptions{MaxBytes: -1}); err == nil {
		t.Error("a negative MaxBytes was accepted")
	}
	if _, err := Bodies(b, &BodyOptions{Timeout: -1}); err == nil {
		t.Error("a negative Timeout was accepted")
	}
}
