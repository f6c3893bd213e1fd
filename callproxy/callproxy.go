package callproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// Options configures a proxy. The zero value means the defaults.
type Options struct {
	// Timeout bounds one call to the backend, from sending the request to
	// reading the whole answer; past it the call fails with 504 timeout.
	// Default 10s.
	Timeout time.Duration
	// Client sends the requests. Default: a client on
	// http.DefaultTransport that does not follow redirects. A client of
	// your own keeps its own redirect policy: if it follows redirects, it
	// sends Header (secrets included) wherever the backend redirects to.
	Client *http.Client
	// MaxResponseBytes bounds the backend's answer; a longer one fails with
	// 502 bad_gateway. Default 1 MiB.
	MaxResponseBytes int64
	// Header holds extra headers sent with every request, such as a shared
	// secret the backend checks. Content-Type and Accept are always
	// application/json. New copies it.
	Header http.Header
}

// Defaults of Options.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Request is the body the proxy POSTs to the backend.
type Request struct {
	// Name is the call's name.
	Name string `json:"name"`
	// Arg is the caller's argument (null when none).
	Arg json.RawMessage `json:"arg"`
}

// Response is a backend's successful (2xx) answer.
type Response struct {
	// Result is relayed to the caller. It must be present, even if null.
	Result json.RawMessage `json:"result"`
	// Versions, optional, maps each collection the backend wrote (through
	// the HTTP API) to the version its write produced, so the caller can
	// wait until its view includes them.
	Versions map[string]uint64 `json:"versions,omitempty"`
	// Await, optional, is a position of a source (a PostgreSQL LSN) that
	// the backend wrote to: the proxy answers once the source has
	// applied it, with the versions of its collections then
	// (viewsync.Call.Await).
	Await *Await `json:"await,omitempty"`
}

// Await is the "await" of a backend's answer: the position its write got
// in a source's system, such as {"position":"16/B374D848"} from
// PostgreSQL's pg_current_wal_lsn() after the backend's commit.
type Await struct {
	// Source names the source (as added to the hub: "postgres" for
	// --pg-url); empty means the hub's only source.
	Source string `json:"source,omitempty"`
	// Position is the source's position to wait for. Required.
	Position string `json:"position"`
	// Collections, optional, are the collections whose versions the
	// answer carries; none means every collection the source feeds.
	Collections []string `json:"collections,omitempty"`
}

// proxy is the state behind the CallFunc New returns. It is read-only after
// New, so calls run concurrently.
type proxy struct {
	url     string
	client  *http.Client
	timeout time.Duration
	max     int64
	header  http.Header
}

// New returns a call handler that relays each call to the backend at
// backendURL (http or https) and its answer back, for use as
// Hub.HandleCallFallback or Hub.HandleCall. A nil opts means the defaults.
func New(backendURL string, opts *Options) (viewsync.CallFunc, error) {
	u, err := url.Parse(backendURL)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only why.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("callproxy: backend URL does not parse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("callproxy: backend URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("callproxy: backend URL %q: no host", u.Redacted())
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("callproxy: backend URL %q: a fragment is never sent; remove it", u.Redacted())
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout < 0 || o.MaxResponseBytes < 0 {
		return nil, errors.New("callproxy: negative Timeout or MaxResponseBytes")
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Client == nil {
		o.Client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	p := &proxy{url: u.String(), client: o.Client, timeout: o.Timeout, max: o.MaxResponseBytes, header: o.Header.Clone()}
	return p.call, nil
}

// call relays one call to the backend.
func (p *proxy) call(ctx context.Context, call *viewsync.Call) (any, error) {
	arg := call.Arg
	if len(arg) == 0 {
		arg = json.RawMessage("null")
	}
	body, err := json.Marshal(Request{Name: call.Name, Arg: arg})
	if err != nil {
		return nil, fmt.Errorf("callproxy: encoding the request: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("callproxy: %w", err)
	}
	for k, vs := range p.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := p.client.Do(req)
	if err != nil {
		return nil, p.transportError(ctx, tctx, "call backend unreachable", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > p.max {
		return nil, gatewayError(fmt.Sprintf("call backend's answer is over %d bytes", p.max),
			fmt.Errorf("Content-Length %d", resp.ContentLength))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, p.max+1))
	if err != nil {
		return nil, p.transportError(ctx, tctx, "reading the call backend's answer failed", err)
	}
	if int64(len(b)) > p.max {
		return nil, gatewayError(fmt.Sprintf("call backend's answer is over %d bytes", p.max), nil)
	}

	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return p.success(ctx, call, b)
	case s >= 400 && s < 500:
		return nil, refusal(resp, b)
	default:
		return nil, gatewayError("call backend answered "+resp.Status, fmt.Errorf("body %s", snippet(b)))
	}
}

// transportError classifies a failure to exchange with the backend: the
// caller's own context ending (returned as is, so the transport maps it),
// the proxy's timeout (504), or anything else (502).
func (p *proxy) transportError(ctx, tctx context.Context, msg string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("callproxy: %w", context.Cause(ctx))
	case tctx.Err() != nil:
		return fmt.Errorf("%w: %w", &viewsync.CallError{
			Code:    protocol.CodeTimeout,
			Message: fmt.Sprintf("call backend did not answer within %s", p.timeout),
		}, err)
	default:
		return gatewayError(msg, err)
	}
}

// success decodes a 2xx answer, reports its versions to the call, waits
// for the source position it awaits, and returns its result.
func (p *proxy) success(ctx context.Context, call *viewsync.Call, b []byte) (any, error) {
	var res Response
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&res); err != nil {
		return nil, gatewayError(`call backend's answer is not the JSON object {"result":…}`, fmt.Errorf("%v; body %s", err, snippet(b)))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, gatewayError("call backend's answer has trailing data after its JSON object", fmt.Errorf("body %s", snippet(b)))
	}
	if res.Result == nil {
		return nil, gatewayError(`call backend's answer lacks "result"`, fmt.Errorf("body %s", snippet(b)))
	}
	for coll := range res.Versions {
		if err := protocol.ValidateCollection(coll); err != nil {
			return nil, gatewayError("call backend's answer names a bad collection in \"versions\"", err)
		}
	}
	for coll, v := range res.Versions {
		call.Observe(coll, v)
	}
	if a := res.Await; a != nil {
		if a.Position == "" {
			return nil, gatewayError(`call backend's answer has "await" without "position"`, fmt.Errorf("body %s", snippet(b)))
		}
		err := call.Await(ctx, a.Source, a.Position, a.Collections...)
		switch {
		case err == nil:
		case errors.Is(err, viewsync.ErrUnknownSource), errors.Is(err, viewsync.ErrBadPosition), errors.Is(err, viewsync.ErrInvalid):
			return nil, gatewayError(`call backend's answer has an "await" that cannot be waited for`, err)
		default:
			return nil, err // timeout, the caller's context, a source closing
		}
	}
	return res.Result, nil
}

// refusal turns a 4xx answer into the error it carries: the contract's
// error body with a client error code is relayed; anything else means the
// backend is not speaking the contract (502).
func refusal(resp *http.Response, b []byte) error {
	var eb protocol.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || eb.Error == nil {
		return gatewayError(fmt.Sprintf("call backend answered %s without the contract's error body", resp.Status),
			fmt.Errorf("body %s", snippet(b)))
	}
	code := eb.Error.Code
	if st := code.Status(); st < 400 || st >= 500 {
		return gatewayError(fmt.Sprintf("call backend answered %s with error code %q, not a client error code", resp.Status, code), nil)
	}
	msg := eb.Error.Message
	if strings.TrimSpace(msg) == "" {
		msg = "call backend refused the call: " + string(code)
	}
	return &viewsync.CallError{Code: code, Message: msg}
}

// gatewayError is a 502 with a message for the caller; cause, for the
// logs, goes into the error's text only.
func gatewayError(msg string, cause error) error {
	ce := &viewsync.CallError{Code: protocol.CodeBadGateway, Message: msg}
	if cause == nil {
		return ce
	}
	return fmt.Errorf("%w: %w", ce, cause)
}

// snippet quotes the start of a body for a log line.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}
