package e2e

// The must-show tests of access control, through a real server:
//
//   - TestAccessRefusals: every kind of bad credential (401 with a Bearer
//     challenge) and every missing right (403) is refused on every
//     transport — plain HTTP, the one-collection streams (Server-Sent
//     Events and NDJSON, token in the header, the query and the cookie)
//     and WebSocket (the upgrade refused with 401; subscribe, commit and
//     call messages answered with forbidden) — with the contract's error
//     body, and changes nothing in the store; valid tokens pass (positive
//     controls); the Policy's Denied counts, and the Prometheus counter,
//     match the refusals exactly.
//   - TestPushTokenExpiry (push_test.go): a token expiring ~1-2 s after
//     issue ends every push transport's stream, saying why; a fresh token
//     resumes from the cursor, every commit made meanwhile arriving once,
//     in order.
//   - TestAccessFlood: a client flooding from 127.0.0.1 gets 429 past its
//     connection limit and past its commit and call rates, while a
//     well-behaved client from 127.0.0.2 is served throughout.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/client/vsclient"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
)

// httpOp is one request of the HTTP API that a Policy guards.
type httpOp struct {
	name   string
	action auth.Action
	// build makes the request on collection coll (the call writes to it).
	build func(base, coll string) *http.Request
}

func newReq(method, url, contentType, body string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		panic(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

var httpOps = []httpOp{
	{"GET snapshot", auth.Read, func(b, c string) *http.Request {
		return newReq(http.MethodGet, b+"/v1/collections/"+c, "", "")
	}},
	{"GET version", auth.Read, func(b, c string) *http.Request {
		return newReq(http.MethodGet, b+"/v1/collections/"+c+"/version", "", "")
	}},
	{"GET changes", auth.Read, func(b, c string) *http.Request {
		return newReq(http.MethodGet, b+"/v1/collections/"+c+"/changes?after=0", "", "")
	}},
	{"GET record", auth.Read, func(b, c string) *http.Request {
		return newReq(http.MethodGet, b+"/v1/collections/"+c+"/records/r1", "", "")
	}},
	{"PUT record", auth.Write, func(b, c string) *http.Request {
		return newReq(http.MethodPut, b+"/v1/collections/"+c+"/records/r1", "application/json", `{"n":"put"}`)
	}},
	{"PATCH record", auth.Write, func(b, c string) *http.Request {
		return newReq(http.MethodPatch, b+"/v1/collections/"+c+"/records/r1", "application/merge-patch+json", `{"patched":true}`)
	}},
	{"DELETE record", auth.Write, func(b, c string) *http.Request {
		return newReq(http.MethodDelete, b+"/v1/collections/"+c+"/records/r1", "", "")
	}},
	{"POST commits", auth.Write, func(b, c string) *http.Request {
		return newReq(http.MethodPost, b+"/v1/collections/"+c+"/commits", "application/json",
			`{"ops":[{"op":"put","id":"r2","value":{"n":"commit"}},{"op":"delete","id":"r1"}]}`)
	}},
	{"POST call", auth.Call, func(b, c string) *http.Request {
		return newReq(http.MethodPost, b+"/v1/calls/"+callBump, "application/json", `{"arg":"`+c+`"}`)
	}},
}

// refusalCase is a request that must be refused.
type refusalCase struct {
	name string
	// token is sent unless missing; scheme, when set, replaces Bearer and
	// the case runs only with the token in the header.
	token   string
	missing bool
	scheme  string
	// status is 401 (code unauthorized) or 403 (forbidden).
	status int
	// reason, when set, must be in the error's message.
	reason string
	// actions are the actions refused; nil: all of them.
	actions []auth.Action
}

func (c refusalCase) code() protocol.Code {
	if c.status == http.StatusForbidden {
		return protocol.CodeForbidden
	}
	return protocol.CodeUnauthorized
}

func (c refusalCase) applies(a auth.Action) bool {
	if c.actions == nil {
		return true
	}
	for _, x := range c.actions {
		if x == a {
			return true
		}
	}
	return false
}

func (c refusalCase) fits(p placement) bool { return c.scheme == "" || p == inHeader }

// allowedCase is a valid token used within its rights: a positive control.
type allowedCase struct {
	name    string
	token   string
	coll    string
	actions []auth.Action
}

// The rights of the tokens of TestAccessRefusals.
var (
	rightsAll      = auth.Rights{Read: []string{"*"}, Write: []string{"*"}, Call: []string{"*"}}
	rightsOnlyA    = auth.Rights{Read: []string{"a"}, Write: []string{"a"}, Call: []string{"a.*"}}
	rightsReadOnly = auth.Rights{Read: []string{"*"}}
	rightsNoCall   = auth.Rights{Read: []string{"*"}, Write: []string{"*"}}
)

// TestAccessRefusals is the negative suite, over every transport, with
// positive controls; see the top of the file.
func TestAccessRefusals(t *testing.T) {
	e := startAccessServer(t, accessOptions{})
	k := e.keys
	client := e.client(t, "")
	e.put(t, "a", "r1", `{"n":1}`)
	e.put(t, "b", "r1", `{"n":1}`)

	later := time.Now().Add(time.Hour)
	valid := func(sub string, r auth.Rights) jwt.MapClaims { return claimsFor(sub, r, later) }
	edit := func(c jwt.MapClaims, f func(jwt.MapClaims)) jwt.MapClaims { f(c); return c }
	fullHS := signHS(t, k.secret, valid("ana", rightsAll), "")

	refusals := []refusalCase{
		{name: "missing", missing: true, reason: "a token is required"},
		{name: "empty", token: "", reason: ""},
		{name: "malformed", token: "not-a-jwt", reason: "malformed token"},
		{name: "not base64", token: "a!b.c!d.e!f", reason: "malformed token"},
		{name: "another scheme", token: fullHS, scheme: "Basic", reason: "Bearer"},
		{name: "expired", token: signHS(t, k.secret, claimsFor("ana", rightsAll, time.Now().Add(-10*time.Minute)), ""), reason: "token expired"},
		{name: "not yet valid", token: signHS(t, k.secret, edit(valid("ana", rightsAll), func(c jwt.MapClaims) {
			c["nbf"] = time.Now().Add(30 * time.Minute).Unix()
		}), ""), reason: "not valid yet"},
		{name: "without exp", token: signHS(t, k.secret, edit(valid("ana", rightsAll), func(c jwt.MapClaims) { delete(c, "exp") }), ""), reason: "exp"},
		{name: "wrong audience", token: signHS(t, k.secret, edit(valid("ana", rightsAll), func(c jwt.MapClaims) { c["aud"] = "another-service" }), ""), reason: "audience"},
		{name: "without audience", token: signHS(t, k.secret, edit(valid("ana", rightsAll), func(c jwt.MapClaims) { delete(c, "aud") }), ""), reason: "aud"},
		{name: "wrong issuer", token: signHS(t, k.secret, edit(valid("ana", rightsAll), func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), ""), reason: "issuer"},
		{name: "alg none", token: unsignedToken(t, valid("ana", rightsAll)), reason: "algorithm not allowed"},
		{name: "HS256 keyed with the RSA public key (PKIX PEM)", token: signHS(t, k.pkixPEM, valid("ana", rightsAll), testKid), reason: "signature"},
		{name: "HS256 keyed with the RSA public key (PKCS1 PEM)", token: signHS(t, k.pkcs1PEM, valid("ana", rightsAll), testKid), reason: "signature"},
		{name: "tampered payload", token: widenRights(t, signHS(t, k.secret, valid("ana", auth.Rights{Read: []string{"a"}}), "")), reason: "signature"},
		{name: "tampered signature", token: flipSignature(t, fullHS), reason: "signature"},
		{name: "another secret", token: signHS(t, k.otherSecret, valid("ana", rightsAll), ""), reason: "signature"},
		{name: "RS256 by another key", token: signRS(t, k.otherRSA, valid("ana", rightsAll), testKid), reason: "signature"},
		{name: "RS256 with an unknown kid", token: signRS(t, k.rsa, valid("ana", rightsAll), "no-such-kid"), reason: "kid"},
		{name: "tampered RS256 payload", token: widenRights(t, signRS(t, k.rsa, valid("ana", auth.Rights{Read: []string{"a"}}), testKid)), reason: "signature"},
	}
	for i := range refusals {
		refusals[i].status = http.StatusUnauthorized
	}
	refusals = append(refusals,
		refusalCase{name: "token for a used on b", token: signHS(t, k.secret, valid("ana", rightsOnlyA), ""),
			status: http.StatusForbidden, reason: "may not"},
		refusalCase{name: "read-only token writing", token: signHS(t, k.secret, valid("rita", rightsReadOnly), ""),
			status: http.StatusForbidden, reason: "may not", actions: []auth.Action{auth.Write, auth.Call}},
		refusalCase{name: "no call right calling", token: signHS(t, k.secret, valid("noah", rightsNoCall), ""),
			status: http.StatusForbidden, reason: "may not", actions: []auth.Action{auth.Call}},
	)
	every := []auth.Action{auth.Read, auth.Write, auth.Call}
	allowed := []allowedCase{
		{name: "HS256 with every right", token: fullHS, coll: "b", actions: every},
		{name: "RS256 from the JWKS with every right", token: signRS(t, k.rsa, valid("ana", rightsAll), testKid), coll: "b", actions: every},
		{name: "token for a used on a", token: signHS(t, k.secret, valid("ana", rightsOnlyA), ""), coll: "a", actions: []auth.Action{auth.Read, auth.Write}},
		{name: "read-only token reading", token: signHS(t, k.secret, valid("rita", rightsReadOnly), ""), coll: "b", actions: []auth.Action{auth.Read}},
		{name: "no call right writing", token: signHS(t, k.secret, valid("noah", rightsNoCall), ""), coll: "b", actions: []auth.Action{auth.Read, auth.Write}},
	}

	// want counts the refusals the Policy must report.
	want := map[protocol.Code]int{}
	refused := func(c refusalCase) { want[c.code()]++ }

	t.Run("http", func(t *testing.T) {
		for _, c := range refusals {
			for _, op := range httpOps {
				if !c.applies(op.action) {
					continue
				}
				t.Run(c.name+"/"+op.name, func(t *testing.T) {
					before := e.state(t, "a", "b")
					req := op.build(e.base, "b")
					attach(req, inHeader, c.token, c.missing, c.scheme)
					r, err := do(client, req)
					if err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
					refused(c)
					if err := refusalError(r, c.status, c.code(), c.reason); err != nil {
						t.Errorf("%s: %v", op.name, err)
					}
					if len(c.token) > 8 && bytes.Contains(r.body, []byte(c.token)) {
						t.Errorf("%s: the refusal echoes the token: %s", op.name, r)
					}
					e.checkUnchanged(t, before)
				})
			}
		}
		for _, c := range allowed {
			for _, op := range httpOps {
				if !(refusalCase{actions: c.actions}).applies(op.action) {
					continue
				}
				t.Run("allowed/"+c.name+"/"+op.name, func(t *testing.T) {
					e.put(t, c.coll, "r1", `{"n":"seed"}`)
					before := e.state(t, c.coll)[c.coll]
					req := op.build(e.base, c.coll)
					attach(req, inHeader, c.token, false, "")
					r, err := do(client, req)
					if err != nil {
						t.Fatalf("%s: %v", op.name, err)
					}
					if r.status != http.StatusOK {
						t.Fatalf("%s: %s, want 200", op.name, r)
					}
					after := e.state(t, c.coll)[c.coll]
					wantVersion := before.head.Version
					if op.action != auth.Read {
						wantVersion++
					}
					if after.head.Version != wantVersion {
						t.Errorf("%s: %s at version %d after, want %d", op.name, c.coll, after.head.Version, wantVersion)
					}
				})
			}
		}
	})

	t.Run("streams", func(t *testing.T) {
		forEachTransport(t, httpStreams, func(t *testing.T, tr pushTransport) {
			for _, p := range []placement{inHeader, inQuery, inCookie} {
				for _, c := range refusals {
					if !c.applies(auth.Read) || !c.fits(p) {
						continue
					}
					t.Run(p.String()+"/"+c.name, func(t *testing.T) {
						before := e.state(t, "a", "b")
						conn, r, err := tr.open(context.Background(), client, e.base, func(req *http.Request) {
							attach(req, p, c.token, c.missing, c.scheme)
						}, pushFollow{coll: "b"})
						if err != nil {
							t.Fatalf("open: %v", err)
						}
						refused(c)
						if conn != nil {
							conn.close()
							t.Fatalf("the stream was opened, want %d %s", c.status, c.code())
						}
						if err := refusalError(r, c.status, c.code(), c.reason); err != nil {
							t.Error(err)
						}
						e.checkUnchanged(t, before)
					})
				}
				for _, c := range allowed {
					t.Run(p.String()+"/allowed/"+c.name, func(t *testing.T) {
						head := e.state(t, c.coll)[c.coll].head
						conn, r, err := tr.open(context.Background(), client, e.base, func(req *http.Request) {
							attach(req, p, c.token, false, "")
						}, pushFollow{coll: c.coll})
						if err != nil || conn == nil {
							t.Fatalf("open: %s %v", r, err)
						}
						defer conn.close()
						ev, err := conn.next()
						if err != nil || ev.kind != evReset || ev.cursor() != head.Cursor() {
							t.Fatalf("first event %v %v, want a reset at %s", ev, err, head.Cursor())
						}
					})
				}
			}
		})
	})

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), accessWait)
		defer cancel()
		for _, p := range []placement{inQuery, inHeader, inCookie} {
			for _, c := range refusals {
				if c.status != http.StatusUnauthorized || !c.fits(p) {
					continue
				}
				t.Run("upgrade/"+p.String()+"/"+c.name, func(t *testing.T) {
					before := e.state(t, "a", "b")
					conn, r, err := dialWS(ctx, client, e.base, p, c.token, c.missing, c.scheme)
					refused(c)
					if err == nil {
						conn.CloseNow()
						t.Fatalf("the upgrade succeeded, want 401")
					}
					if rerr := refusalError(r, c.status, c.code(), c.reason); rerr != nil {
						t.Errorf("upgrade: %v (dial: %v)", rerr, err)
					}
					e.checkUnchanged(t, before)
				})
			}
		}
		// Valid tokens lacking a right: the upgrade succeeds, the
		// messages needing the right are answered with forbidden.
		for _, c := range refusals {
			if c.status != http.StatusForbidden {
				continue
			}
			t.Run("messages/"+c.name, func(t *testing.T) {
				before := e.state(t, "a", "b")
				conn, r, err := dialWS(ctx, client, e.base, inQuery, c.token, false, "")
				if err != nil {
					t.Fatalf("dial: %v (%s)", err, r)
				}
				defer conn.CloseNow()
				for _, a := range []auth.Action{auth.Read, auth.Write, auth.Call} {
					if !c.applies(a) {
						continue
					}
					var m protocol.ClientMessage
					var id protocol.MessageID
					switch a {
					case auth.Read:
						m = &protocol.SubscribeMessage{Collection: "b"}
					case auth.Write:
						id = protocol.StringID("commit-1")
						m = &protocol.CommitMessage{ID: id, Collection: "b", Ops: []protocol.Op{
							{Op: protocol.OpPut, ID: "r1", Value: json.RawMessage(`{"n":"ws"}`)}}}
					case auth.Call:
						id = protocol.StringID("call-1")
						m = &protocol.CallMessage{ID: id, Name: callBump, Arg: json.RawMessage(`"b"`)}
					}
					if err := wsSend(ctx, conn, m); err != nil {
						t.Fatalf("send %s: %v", m.Type(), err)
					}
					refused(c)
					got, err := wsRead(ctx, conn)
					if err != nil {
						t.Fatalf("answer to %s: %v", m.Type(), err)
					}
					if got.Type != protocol.TypeError || got.Code != protocol.CodeForbidden || got.ID != id || !strings.Contains(got.Message, c.reason) {
						t.Errorf("answer to %s: %+v, want an error of code forbidden with id %s", m.Type(), got, id)
					}
				}
				// The connection goes on: a message within the rights (each
				// token may read "a") is still answered, and nothing of the
				// refused ones came first.
				if err := wsSend(ctx, conn, &protocol.SubscribeMessage{Collection: "a"}); err != nil {
					t.Fatalf("send the probe: %v", err)
				}
				if got, err := wsRead(ctx, conn); err != nil || got.Type != protocol.TypeReset || got.Collection != "a" {
					t.Errorf("answer to the probe (subscribe to a): %+v %v, want a reset of a", got, err)
				}
				conn.Close(gws.StatusNormalClosure, "")
				e.checkUnchanged(t, before)
			})
		}
		for _, c := range allowed {
			t.Run("allowed/"+c.name, func(t *testing.T) {
				conn, r, err := dialWS(ctx, client, e.base, inQuery, c.token, false, "")
				if err != nil {
					t.Fatalf("dial: %v (%s)", err, r)
				}
				defer conn.CloseNow()
				// Writes first, then the subscription: nothing interleaves.
				if c.actionAllowed(auth.Write) {
					v := e.state(t, c.coll)[c.coll].head.Version
					wsSend(ctx, conn, &protocol.CommitMessage{ID: protocol.StringID("w"), Collection: c.coll, Ops: []protocol.Op{
						{Op: protocol.OpPut, ID: "r1", Value: json.RawMessage(`{"n":"ws"}`)}}})
					if got, err := wsRead(ctx, conn); err != nil || got.Type != protocol.TypeResult || got.ID != protocol.StringID("w") || got.Versions[c.coll] != v+1 {
						t.Fatalf("commit: %+v %v, want a result at version %d", got, err, v+1)
					}
				}
				if c.actionAllowed(auth.Call) {
					v := e.state(t, c.coll)[c.coll].head.Version
					wsSend(ctx, conn, &protocol.CallMessage{ID: protocol.StringID("k"), Name: callBump, Arg: json.RawMessage(strconv.Quote(c.coll))})
					if got, err := wsRead(ctx, conn); err != nil || got.Type != protocol.TypeResult || got.ID != protocol.StringID("k") || got.Versions[c.coll] != v+1 {
						t.Fatalf("call: %+v %v, want a result at version %d", got, err, v+1)
					}
				}
				if c.actionAllowed(auth.Read) {
					head := e.state(t, c.coll)[c.coll].head
					wsSend(ctx, conn, &protocol.SubscribeMessage{Collection: c.coll})
					if got, err := wsRead(ctx, conn); err != nil || got.Type != protocol.TypeReset || got.Collection != c.coll || got.Version != head.Version {
						t.Fatalf("subscribe: %+v %v, want a reset at %d", got, err, head.Version)
					}
				}
				conn.Close(gws.StatusNormalClosure, "")
			})
		}
	})

	// Every refusal was reported once to Denied, and reaches the metrics.
	if u, f := want[protocol.CodeUnauthorized], want[protocol.CodeForbidden]; u == 0 || f == 0 {
		t.Fatalf("the suite expected %d unauthorized and %d forbidden refusals", u, f)
	}
	for _, code := range []protocol.Code{protocol.CodeUnauthorized, protocol.CodeForbidden, protocol.CodeRateLimited} {
		if got := e.denied.get(string(code)); got != want[code] {
			t.Errorf("Policy.Denied was told of %d %s refusals, want %d", got, code, want[code])
		}
	}
	scraped := e.scrapeDenied(t, client)
	for _, code := range []protocol.Code{protocol.CodeUnauthorized, protocol.CodeForbidden, protocol.CodeRateLimited} {
		if got := scraped[string(code)]; got != float64(want[code]) {
			t.Errorf(`metrics: viewsync_denied_total{code=%q} = %v, want %d`, code, got, want[code])
		}
	}
	t.Logf("refusals: %d unauthorized, %d forbidden", want[protocol.CodeUnauthorized], want[protocol.CodeForbidden])
}

func (c allowedCase) actionAllowed(a auth.Action) bool {
	return (refusalCase{actions: c.actions}).applies(a)
}

// hubWriter commits to one collection through the hub, one put at a time
// with a pause between, and remembers what each version wrote.
type hubWriter struct {
	stop, done chan struct{}
	mu         sync.Mutex
	acked      map[uint64]string // version → value put
	last       uint64
	err        error
}

func startHubWriter(e *accessEnv, coll string, gap time.Duration) *hubWriter {
	w := &hubWriter{stop: make(chan struct{}), done: make(chan struct{}), acked: map[uint64]string{}}
	col, err := e.hub.Collection(coll)
	if err != nil {
		w.err = err
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		for i := 1; ; i++ {
			value := fmt.Sprintf(`{"i":%d}`, i)
			r, err := col.Put(context.Background(), "k"+strconv.Itoa(i%4), json.RawMessage(value))
			w.mu.Lock()
			if err != nil {
				w.err = err
			} else {
				w.acked[r.Version] = value
				w.last = r.Version
			}
			w.mu.Unlock()
			if err != nil {
				return
			}
			select {
			case <-w.stop:
				return
			case <-time.After(gap):
			}
		}
	}()
	return w
}

// version returns the version of the writer's latest commit.
func (w *hubWriter) version() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// halt stops the writer and returns its last version.
func (w *hubWriter) halt() (uint64, error) {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.err
}

// value returns what version v put.
func (w *hubWriter) value(v uint64) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.acked[v]
	return s, ok
}

// sequence checks that commits arrive in version order, each exactly once;
// check then compares them with what the writer put (a commit may reach a
// subscriber before the writer hears it was acknowledged).
type sequence struct {
	next uint64
	seen map[uint64][]protocol.Op
}

func (s *sequence) commit(version uint64, ops []protocol.Op) error {
	if version != s.next {
		return fmt.Errorf("commit %d, want %d (in order, no gap, no duplicate)", version, s.next)
	}
	if s.seen == nil {
		s.seen = map[uint64][]protocol.Op{}
	}
	s.seen[version] = ops
	s.next++
	return nil
}

// check compares the commits seen with what the halted writer put.
func (s *sequence) check(w *hubWriter) error {
	for v, ops := range s.seen {
		want, ok := w.value(v)
		if !ok || len(ops) != 1 || ops[0].Op != protocol.OpPut || string(ops[0].Value) != want {
			return fmt.Errorf("commit %d has ops %+v, want the put of %s", v, ops, want)
		}
	}
	return nil
}

// shortExpiry returns an exp 1 to 2 s from now (exp has whole seconds).
func shortExpiry() time.Time { return time.Now().Truncate(time.Second).Add(2 * time.Second) }

// floodCounts counts what the flooding client got.
type floodCounts struct {
	mu sync.Mutex
	// byKind counts answers by what was asked and what came back, e.g.
	// "commit 200", "commit 429 rate", "stream 429 conns".
	byKind map[string]int
	// bad holds unexpected answers (the first few).
	bad []string
}

func (f *floodCounts) add(kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.byKind[kind]++
}

func (f *floodCounts) get(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byKind[kind]
}

func (f *floodCounts) unexpected(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) < 10 {
		f.bad = append(f.bad, fmt.Sprintf(format, args...))
	}
}

// classify429 records a 429 answer to kind: by the connection limit
// ("conns") or by a rate ("rate", whose message names what).
func (f *floodCounts) classify429(kind string, r reply, rateWhat string) {
	switch {
	case refusalError(r, http.StatusTooManyRequests, protocol.CodeRateLimited, "too many concurrent") == nil:
		f.add(kind + " 429 conns")
	case rateWhat != "" && refusalError(r, http.StatusTooManyRequests, protocol.CodeRateLimited, rateWhat) == nil:
		f.add(kind + " 429 rate")
	default:
		f.unexpected("%s: %s (Retry-After %q)", kind, r, r.header.Get("Retry-After"))
	}
}

// goodClient is the well-behaved client: it writes at a modest rate and
// follows its collection over SSE, from 127.0.0.2.
type goodClient struct {
	e      *accessEnv
	client *http.Client
	token  string
	// c writes and reads with client and token.
	c      *vsclient.Client
	mu     sync.Mutex
	seq    int
	acked  map[uint64]string // version → record id
	writes atomic.Int64
	bad    []string
}

func (g *goodClient) fail(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.bad) < 10 {
		g.bad = append(g.bad, fmt.Sprintf(format, args...))
	}
}

// write puts one record and reads the version back.
func (g *goodClient) write(ctx context.Context) {
	g.mu.Lock()
	g.seq++
	id := "g" + strconv.Itoa(g.seq)
	g.mu.Unlock()
	r, err := g.c.Put(ctx, "good", id, json.RawMessage(`{"id":"`+id+`"}`))
	if err != nil || r.Version == 0 {
		g.fail("PUT %s: %+v, %v", id, r, err)
		return
	}
	g.mu.Lock()
	g.acked[r.Version] = id
	g.mu.Unlock()
	g.writes.Add(1)
	if _, err := g.c.Head(ctx, "good"); err != nil {
		g.fail("GET version: %v", err)
	}
}

// TestAccessFlood: one client floods from 127.0.0.1 — more concurrent
// streams and long-polls than its address may hold, then writes and calls
// as fast as it can — and gets 429 rate_limited for what is over its
// limits, while a client with another principal, from 127.0.0.2, keeps
// being served: all its writes succeed and its subscription gets every
// commit in order.
func TestAccessFlood(t *testing.T) {
	const (
		maxConns = 20
		rate     = 20 // commits and calls per second, per principal
		burst    = 40
		// Phase 1: streams, then polls, then extra streams: more than
		// maxConns in all, and more than maxConns streams alone.
		streams = 15
		polls   = 15
		extra   = maxConns + 5 - streams
		// The flood of writes and calls lasts until each was refused at
		// least floodRefusals times for its rate, and the good client has
		// written goodWrites times meanwhile.
		floodRefusals = 20
		goodWrites    = 5
	)
	e := startAccessServer(t, accessOptions{
		commits:  limit.NewRate(limit.RateOptions{PerSecond: rate, Burst: burst}),
		calls:    limit.NewRate(limit.RateOptions{PerSecond: rate, Burst: burst}),
		maxConns: maxConns,
		durable:  true,
	})
	ctx, cancel := context.WithTimeout(context.Background(), accessWait)
	defer cancel()
	flooder := e.client(t, "")
	g := &goodClient{e: e, client: e.client(t, "127.0.0.2"), acked: map[uint64]string{},
		token: e.token("good", auth.Rights{Read: []string{"good"}, Write: []string{"good"}}, time.Hour)}
	var err error
	if g.c, err = vsclient.New(vsclient.Options{URL: e.base, Token: g.token, HTTPClient: g.client}); err != nil {
		t.Fatal(err)
	}
	if _, err := do(g.client, newReq(http.MethodGet, e.base+"/healthz", "", "")); err != nil {
		t.Skipf("cannot connect from 127.0.0.2 to 127.0.0.1: %v", err)
	}
	floodToken := e.token("flooder", auth.Rights{Read: []string{"flood-*"}, Write: []string{"flood-*"}, Call: []string{callNoop}}, time.Hour)
	floodReq := func(ctx context.Context, req *http.Request) *http.Request {
		req = req.WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+floodToken)
		return req
	}
	fc := &floodCounts{byKind: map[string]int{}}

	// The good client follows its collection from before the flood.
	gs, r, err := openSSE(ctx, g.client, e.base+"/v1/collections/good/events", func(req *http.Request) {
		req.Header.Set("Authorization", "Bearer "+g.token)
	})
	if err != nil || gs == nil {
		t.Fatalf("good client's stream: %s %v", r, err)
	}
	defer gs.close()
	if n := e.conns.Open("127.0.0.2"); n < 1 {
		t.Fatalf("the server counts %d requests from 127.0.0.2, want the good client's stream", n)
	}
	type seenCommit struct {
		version uint64
		ops     []protocol.Op
	}
	var (
		goodSeen     []seenCommit
		goodLast     atomic.Uint64
		goodStopping atomic.Bool
	)
	goodReader := make(chan error, 1)
	go func() {
		goodReader <- func() error {
			first := true
			for {
				ev, err := gs.next()
				if err != nil {
					if goodStopping.Load() {
						return nil
					}
					return err
				}
				switch {
				case first && ev.event == "reset":
					var snap protocol.Snapshot
					if json.Unmarshal([]byte(ev.data), &snap) != nil || snap.Version != 0 {
						return fmt.Errorf("first event %+v, want a reset at version 0", ev)
					}
				case ev.event == "commit":
					var cm protocol.Commit
					if err := json.Unmarshal([]byte(ev.data), &cm); err != nil {
						return fmt.Errorf("commit %q: %v", ev.data, err)
					}
					goodSeen = append(goodSeen, seenCommit{cm.Version, cm.Ops})
					goodLast.Store(cm.Version)
				default:
					return fmt.Errorf("unexpected event %+v", ev)
				}
				first = false
			}
		}()
	}()
	// The good client writes at a modest pace throughout.
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			g.write(ctx)
			select {
			case <-stopWriting:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// Phase 1: the flooder opens more streams and long-polls than its
	// address may hold: streams first (all held), then long-polls (a few
	// held, the rest refused), then more streams (all refused).
	phase1, end1 := context.WithCancel(ctx)
	var wg sync.WaitGroup
	openStream := func() {
		s, r, err := openSSE(phase1, flooder, e.base+"/v1/collections/flood-idle/events", func(req *http.Request) {
			req.Header.Set("Authorization", "Bearer "+floodToken)
		})
		switch {
		case err != nil:
			fc.unexpected("stream: %v", err)
		case s != nil:
			fc.add("stream 200")
			for {
				if _, err := s.next(); err != nil {
					break
				}
			}
			s.close()
		default:
			fc.classify429("stream", r, "")
		}
	}
	for range streams {
		wg.Go(openStream)
	}
	waitUntil(t, ctx, "the flooder's first streams are answered", func() bool {
		return fc.get("stream 200")+fc.get("stream 429 conns") == streams
	})
	if n := fc.get("stream 200"); n != streams {
		t.Fatalf("%d of the flooder's first %d streams were admitted, want all (limit %d)", n, streams, maxConns)
	}
	for range polls {
		wg.Go(func() {
			r, err := do(flooder, floodReq(phase1, newReq(http.MethodGet, e.base+"/v1/collections/flood-idle/changes?after=0&wait=50s", "", "")))
			switch {
			case err != nil && phase1.Err() != nil:
				fc.add("poll held") // admitted, and held until the flooder gave up
			case err != nil:
				fc.unexpected("long-poll: %v", err)
			case r.status == http.StatusTooManyRequests:
				fc.classify429("poll", r, "")
			default:
				fc.unexpected("long-poll: %s", r)
			}
		})
	}
	// Every long-poll is either held by the server or refused.
	waitUntil(t, ctx, "every long-poll of the flooder is held or refused", func() bool {
		return fc.get("poll 429 conns")+e.conns.Open("127.0.0.1")-streams == polls
	})
	if n := fc.get("poll 429 conns"); n != streams+polls-maxConns {
		t.Errorf("%d long-polls refused, want %d", n, streams+polls-maxConns)
	}
	for range extra {
		wg.Go(openStream)
	}
	waitUntil(t, ctx, "the flooder's extra streams are answered", func() bool {
		return fc.get("stream 429 conns") == extra
	})
	if n := e.conns.Open("127.0.0.1"); n != maxConns {
		t.Errorf("the server holds %d requests from the flooder, want its limit %d", n, maxConns)
	}
	// Saturated, the flooder can do nothing more: writes and WebSocket
	// upgrades are refused before the Policy is asked.
	for range 5 {
		r, err := do(flooder, floodReq(ctx, newReq(http.MethodPost, e.base+"/v1/collections/flood-w/commits", "application/json", `{"ops":[{"op":"put","id":"x","value":1}]}`)))
		if err != nil {
			t.Fatalf("flooder's commit: %v", err)
		}
		fc.classify429("saturated commit", r, "")
	}
	if c, r, err := dialWS(ctx, flooder, e.base, inQuery, floodToken, false, ""); err == nil {
		c.CloseNow()
		t.Errorf("the flooder opened a WebSocket past its connection limit")
	} else {
		fc.classify429("saturated websocket", r, "")
	}
	// Meanwhile the good client is served: a write, reads, another stream.
	g.write(ctx)
	if _, err := g.c.Snapshot(ctx, "good", nil); err != nil {
		g.fail("GET the collection while the flooder is saturated: %v", err)
	}
	if s, r, err := openSSE(ctx, g.client, e.base+"/v1/collections/good/events", func(req *http.Request) {
		req.Header.Set("Authorization", "Bearer "+g.token)
	}); s == nil {
		g.fail("second stream while the flooder is saturated: %s %v", r, err)
	} else {
		s.close()
	}
	end1()
	wg.Wait()
	waitUntil(t, ctx, "the flooder's requests are released", func() bool { return e.conns.Open("127.0.0.1") == 0 })

	// Phase 2: the flooder writes and calls as fast as it can.
	before := g.writes.Load()
	phase2, end2 := context.WithCancel(ctx)
	flooding := func() bool {
		return phase2.Err() == nil && !(fc.get("commit 429 rate") >= floodRefusals && fc.get("call 429 rate") >= floodRefusals &&
			fc.get("ws commit 429 rate") > 0 && g.writes.Load()-before >= goodWrites)
	}
	start2 := time.Now()
	for i := range 8 {
		wg.Go(func() {
			for n := 0; flooding(); n++ {
				body := fmt.Sprintf(`{"ops":[{"op":"put","id":"w%d-%d","value":%d}]}`, i, n%8, n)
				r, err := do(flooder, floodReq(phase2, newReq(http.MethodPost, e.base+"/v1/collections/flood-w/commits", "application/json", body)))
				switch {
				case err != nil:
					if phase2.Err() == nil {
						fc.unexpected("commit: %v", err)
					}
				case r.status == http.StatusOK:
					fc.add("commit 200")
				case r.status == http.StatusTooManyRequests:
					fc.classify429("commit", r, "commits per second")
				default:
					fc.unexpected("commit: %s", r)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for flooding() {
				r, err := do(flooder, floodReq(phase2, newReq(http.MethodPost, e.base+"/v1/calls/"+callNoop, "application/json", `{"arg":null}`)))
				switch {
				case err != nil:
					if phase2.Err() == nil {
						fc.unexpected("call: %v", err)
					}
				case r.status == http.StatusOK:
					fc.add("call 200")
				case r.status == http.StatusTooManyRequests:
					fc.classify429("call", r, "calls per second")
				default:
					fc.unexpected("call: %s", r)
				}
			}
		})
	}
	// And commits over a WebSocket, from the same budget.
	wg.Go(func() {
		conn, r, err := dialWS(phase2, flooder, e.base, inQuery, floodToken, false, "")
		if err != nil {
			fc.unexpected("websocket: %v (%s)", err, r)
			return
		}
		defer conn.CloseNow()
		for n := 0; flooding(); n++ {
			id := protocol.IntID(int64(n))
			err := wsSend(phase2, conn, &protocol.CommitMessage{ID: id, Collection: "flood-w", Ops: []protocol.Op{
				{Op: protocol.OpPut, ID: "ws", Value: json.RawMessage(strconv.Itoa(n))}}})
			if err != nil {
				fc.unexpected("websocket commit: %v", err)
				return
			}
			m, err := wsRead(phase2, conn)
			switch {
			case err != nil:
				fc.unexpected("websocket answer: %v", err)
				return
			case m.Type == protocol.TypeResult && m.ID == id:
				fc.add("ws commit result")
			case m.Type == protocol.TypeError && m.ID == id && m.Code == protocol.CodeRateLimited && strings.Contains(m.Message, "commits per second"):
				fc.add("ws commit 429 rate")
			default:
				fc.unexpected("websocket commit: %+v", m)
			}
		}
		conn.Close(gws.StatusNormalClosure, "")
	})
	wg.Wait()
	took2 := time.Since(start2)
	end2()

	// The good client stops; its stream must bring every commit.
	close(stopWriting)
	<-writerDone
	g.mu.Lock()
	head := uint64(len(g.acked))
	g.mu.Unlock()
	waitUntil(t, ctx, fmt.Sprintf("the good client's stream reaches version %d", head), func() bool {
		select {
		case err := <-goodReader:
			goodReader <- err
			return true
		default:
		}
		return goodLast.Load() >= head
	})
	goodStopping.Store(true)
	gs.close()
	if err := <-goodReader; err != nil {
		t.Errorf("good client's stream: %v", err)
	}

	// The flooder was refused, and counted.
	fc.mu.Lock()
	t.Logf("flooder: %v; flood of writes and calls lasted %v", fc.byKind, took2.Round(time.Millisecond))
	for _, b := range fc.bad {
		t.Errorf("flooder got an unexpected answer: %s", b)
	}
	fc.mu.Unlock()
	for _, kind := range []string{"saturated commit 429 conns", "saturated websocket 429 conns", "commit 429 rate", "call 429 rate", "ws commit 429 rate", "commit 200", "call 200"} {
		if fc.get(kind) == 0 {
			t.Errorf("flooder: no %q", kind)
		}
	}
	for _, kind := range []string{"stream 429 conns", "poll 429 conns", "poll held"} {
		if fc.get(kind) == 0 {
			t.Errorf("flooder: no %q", kind)
		}
	}
	// The rates held: no more than the burst and the rate over the time
	// the flood took were admitted.
	admissible := burst + int(rate*took2.Seconds()) + 1
	if n := fc.get("commit 200") + fc.get("ws commit result"); n > admissible {
		t.Errorf("flooder: %d commits admitted (HTTP and WebSocket) in %v, more than the %d its rate admits", n, took2, admissible)
	}
	if n := fc.get("call 200"); n > admissible {
		t.Errorf("flooder: %d calls admitted in %v, more than the %d its rate admits", n, took2, admissible)
	}
	// Denied and the metrics saw the refusals.
	conns := fc.get("stream 429 conns") + fc.get("poll 429 conns") + fc.get("saturated commit 429 conns") + fc.get("saturated websocket 429 conns")
	rated := fc.get("commit 429 rate") + fc.get("call 429 rate") + fc.get("ws commit 429 rate")
	if got := e.denied.get("too_many_connections"); got != conns {
		t.Errorf("the connection limit reported %d refusals, the flooder got %d", got, conns)
	}
	if got := e.denied.get(string(protocol.CodeRateLimited)); got != rated {
		t.Errorf("Policy.Denied was told of %d rate_limited refusals, the flooder got %d", got, rated)
	}
	for _, code := range []string{"unauthorized", "forbidden"} {
		if got := e.denied.get(code); got != 0 {
			t.Errorf("Policy.Denied was told of %d %s refusals, want none", got, code)
		}
	}
	scraped := e.scrapeDenied(t, g.client)
	if scraped["rate_limited"] != float64(rated) || scraped["too_many_connections"] != float64(conns) {
		t.Errorf("metrics: viewsync_denied_total %v, want rate_limited %d and too_many_connections %d", scraped, rated, conns)
	}

	// The good client was served throughout: every write succeeded, and
	// its stream brought every commit, in order, once.
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range g.bad {
		t.Errorf("good client: %s", b)
	}
	if len(goodSeen) != int(head) {
		t.Errorf("good client's stream brought %d commits, it made %d", len(goodSeen), head)
	}
	for i, c := range goodSeen {
		id, ok := g.acked[c.version]
		want := `{"id":"` + id + `"}`
		if c.version != uint64(i+1) || !ok || len(c.ops) != 1 || c.ops[0].ID != id || !bytes.Equal(c.ops[0].Value, []byte(want)) {
			t.Errorf("good client's commit #%d: version %d ops %+v, want version %d putting %s", i+1, c.version, c.ops, i+1, want)
			break
		}
	}
	t.Logf("good client: %d writes, %d commits received in order", head, len(goodSeen))
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Errorf("the test ran into its hang guard")
	}
}
