// Package vsclient is the Go client of viewsync: live views of a server's
// collections over Server-Sent Events, NDJSON or WebSocket — resumed from
// their cursor after a disconnect, with catch-ups and resets applied — and
// writes and calls over HTTP. For Go services, command-line tools and
// tests.
//
//	c, err := vsclient.New(vsclient.Options{URL: "http://127.0.0.1:8080"})
//	…
//	v := c.Subscribe(ctx, "products", vsclient.SubscribeOptions{})
//	defer v.Close()
//	for {
//		ch, err := v.Next(ctx) // applied to v before it returns
//		if err != nil {
//			return err // the view's end: ctx, Close, or an error retrying cannot mend
//		}
//		fmt.Println(ch.Kind, ch.Version, len(v.Records()))
//	}
//
// A View reconnects by itself, with jittered exponential backoff, from the
// cursor of the last change it handed out, so that every change reaches
// Next once and in order: a commit that does not follow the cursor (a gap)
// or repeats it is never handed out. Errors that retrying cannot mend (a
// bad filter, a right the token lacks, a name that is not valid) end the
// view: Next returns them.
package vsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Transport is how a View receives changes.
type Transport string

// The transports of a View.
const (
	// SSE reads GET /v1/collections/{c}/events (text/event-stream).
	SSE Transport = "sse"
	// NDJSON reads GET /v1/collections/{c}/stream (application/x-ndjson).
	NDJSON Transport = "ndjson"
	// WebSocket subscribes on GET /v1/ws (subprotocol viewsync.v1), one
	// connection per View.
	WebSocket Transport = "ws"
)

// Options configure a Client.
type Options struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080; it may
	// carry a path prefix. Required.
	URL string
	// Token, when set, is sent as "Authorization: Bearer …" on every
	// request and connection.
	Token string
	// TokenFunc, when set, is asked for the token before every request and
	// connection instead of Token, so that it may refresh it.
	TokenFunc func(ctx context.Context) (string, error)
	// HTTPClient makes the requests. Default: a client without a timeout
	// (streams last); bound requests with their context.
	HTTPClient *http.Client
	// Transport is how views receive changes; default SSE.
	Transport Transport
	// MinBackoff and MaxBackoff bound the wait before a reconnect, which
	// doubles from MinBackoff up to MaxBackoff (each jittered); defaults
	// 250 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
}

// Client talks to one viewsync server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	opts Options
	http *http.Client
}

// New returns a Client of the server at o.URL.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("vsclient: URL must be an http:// or https:// URL, not %q", o.URL)
	}
	u.Path, u.RawPath = strings.TrimSuffix(u.Path, "/"), strings.TrimSuffix(u.RawPath, "/")
	u.RawQuery, u.Fragment = "", ""
	switch o.Transport {
	case "":
		o.Transport = SSE
	case SSE, NDJSON, WebSocket:
	default:
		return nil, fmt.Errorf("vsclient: unknown transport %q (want sse, ndjson or ws)", o.Transport)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, opts: o, http: hc}, nil
}

// Error is an error answer of the server: its HTTP status and the
// contract's error code and message. Compare with errors.Is and the
// Err… values, which match by code.
type Error struct {
	Status  int
	Code    protocol.Code
	Message string
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("viewsync: %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("viewsync: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is reports whether target is an *Error with the same code and no
// status or message of its own (one of the Err… values).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == 0 && t.Message == "" && t.Code == e.Code
}

// Errors to compare answers with: errors.Is(err, vsclient.ErrPreconditionFailed).
var (
	ErrBadRequest         = &Error{Code: protocol.CodeBadRequest}
	ErrUnauthorized       = &Error{Code: protocol.CodeUnauthorized}
	ErrForbidden          = &Error{Code: protocol.CodeForbidden}
	ErrNotFound           = &Error{Code: protocol.CodeNotFound}
	ErrPreconditionFailed = &Error{Code: protocol.CodePreconditionFailed}
	ErrTooLarge           = &Error{Code: protocol.CodeTooLarge}
	ErrRateLimited        = &Error{Code: protocol.CodeRateLimited}
	ErrUnavailable        = &Error{Code: protocol.CodeUnavailable}
	ErrTimeout            = &Error{Code: protocol.CodeTimeout}
)

// ErrClosed is returned by a View's Next and WaitFor once it is closed.
var ErrClosed = errors.New("vsclient: view closed")

// permanent reports whether retrying the same request cannot succeed: a
// 4xx other than 408 and 429, except 401 when the token may refresh.
func (c *Client) permanent(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch {
	case e.Code == protocol.CodeUnauthorized:
		return c.opts.TokenFunc == nil
	case e.Code == protocol.CodeRateLimited || e.Code == protocol.CodeTimeout || e.Code == protocol.CodeUnavailable:
		return false
	}
	status := e.Status
	if status == 0 { // a WebSocket error message: the code's status
		status = e.Code.Status()
	}
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout
}

// token returns the bearer token to send, "" for none.
func (c *Client) token(ctx context.Context) (string, error) {
	if c.opts.TokenFunc != nil {
		t, err := c.opts.TokenFunc(ctx)
		if err != nil {
			return "", fmt.Errorf("vsclient: token: %w", err)
		}
		return t, nil
	}
	return c.opts.Token, nil
}

// url returns the URL of path, its segments escaped by the caller, with
// query q.
func (c *Client) url(path string, q url.Values) string {
	u := c.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// newRequest returns a request with the token.
func (c *Client) newRequest(ctx context.Context, method, u string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	t, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	if t != "" {
		req.Header.Set("Authorization", "Bearer "+t)
	}
	return req, nil
}

// maxAnswer bounds what the client reads of one answer that is not a
// stream.
const maxAnswer = 256 << 20

// do sends a request and decodes a 2xx answer's JSON into out (when not
// nil); another answer is an *Error.
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return answerError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(out); err != nil {
		return fmt.Errorf("vsclient: %s %s: decoding the answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// answerError reads an error answer: the contract's body when it has
// one, else the status alone.
func answerError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body protocol.ErrorBody
	if json.Unmarshal(b, &body) == nil && body.Error != nil && body.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message}
	}
	return &Error{Status: resp.StatusCode, Code: statusCode(resp.StatusCode), Message: strings.TrimSpace(string(bytes.ToValidUTF8(b, nil)))}
}
