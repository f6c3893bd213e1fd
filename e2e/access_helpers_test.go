package e2e

// Helpers of the access-control tests (access_test.go): a real server with
// an auth.Policy (JWT verifier with an HMAC secret and a JWKS holding an
// RSA key, optional rates and per-address connection limit) and every push
// transport mounted, token minting, plain HTTP, SSE and WebSocket clients,
// and the store's state read through the hub.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/internal/wstest"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/ndjson"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

// accessWait bounds every wait of the access tests: a hang guard, never
// an expectation of speed.
const accessWait = 60 * time.Second

// What the server under test expects of tokens.
const (
	testAudience = "viewsync-e2e"
	testIssuer   = "https://issuer.e2e.test"
	testKid      = "e2e-rsa-1"
)

// testKeys are the keys of the access tests, made once per run: the
// server's HMAC secret and RSA key (published in its JWKS), and the keys
// of an impostor.
type testKeys struct {
	secret      []byte
	otherSecret []byte
	rsa         *rsa.PrivateKey
	otherRSA    *rsa.PrivateKey
	// pkixPEM and pkcs1PEM are the RSA public key as an attacker finds it
	// published, the HMAC key of an algorithm-confusion attempt.
	pkixPEM, pkcs1PEM []byte
	jwks              []byte
}

var accessKeys = sync.OnceValues(func() (*testKeys, error) {
	k := &testKeys{secret: make([]byte, 32), otherSecret: make([]byte, 32)}
	rand.Read(k.secret)
	rand.Read(k.otherSecret)
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		return nil, err
	}
	k.pkixPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	k.pkcs1PEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	b64 := base64.RawURLEncoding.EncodeToString
	k.jwks, err = json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": testKid, "alg": "RS256", "use": "sig",
		"n": b64(k.rsa.N.Bytes()), "e": b64(big.NewInt(int64(k.rsa.E)).Bytes()),
	}}})
	return k, err
})

func keys(t *testing.T) *testKeys {
	t.Helper()
	k, err := accessKeys()
	if err != nil {
		t.Fatalf("making the test keys: %v", err)
	}
	return k
}

// claimsFor returns the claims of a token the server accepts: subject,
// rights, expiry, audience and issuer. Tests change them to make bad ones.
func claimsFor(sub string, rights auth.Rights, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"sub":      sub,
		"exp":      exp.Unix(),
		"iat":      time.Now().Unix(),
		"aud":      testAudience,
		"iss":      testIssuer,
		"viewsync": rights,
	}
}

// signHS signs claims with HS256 and key.
func signHS(t *testing.T, key []byte, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign HS256: %v", err)
	}
	return s
}

// signRS signs claims with RS256 and key, naming kid.
func signRS(t *testing.T, key *rsa.PrivateKey, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign RS256: %v", err)
	}
	return s
}

// unsignedToken returns a token with header alg "none" and no signature.
func unsignedToken(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT"})
	p, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// widenRights rewrites the payload of a signed token so that it grants
// every right, keeping the header and the signature.
func widenRights(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts", token, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["viewsync"] = auth.All
	claims["sub"] = "root"
	raw, err = json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
}

// flipSignature changes one bit in the first byte of a token's signature
// (not in its last base64 character, whose low bits may be padding that
// decoders ignore).
func flipSignature(t *testing.T, token string) string {
	t.Helper()
	i := strings.LastIndexByte(token, '.')
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || len(sig) == 0 {
		t.Fatalf("token signature %q: %v", token[i+1:], err)
	}
	sig[0] ^= 0x01
	return token[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// deniedCounter counts the refusals the Policy reports, by code.
type deniedCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (d *deniedCounter) add(code string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[string]int{}
	}
	d.n[code]++
}

func (d *deniedCounter) get(code string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[code]
}

// accessOptions configures an access server.
type accessOptions struct {
	// commits and calls are the Policy's rates; nil: unbounded.
	commits, calls *limit.Rate
	// maxConns, when positive, puts limit.Conns middleware in front.
	maxConns int
	// durable makes the store fsync every commit, as in production; the
	// tests that do not measure writes under load go without, so that a
	// busy disk does not slow them down.
	durable bool
}

// accessEnv is a real server enforcing a Policy: a hub over a bbolt store
// in t.TempDir, the HTTP API with SSE, the NDJSON stream and WebSocket
// mounted, on a listener bound to 127.0.0.1.
type accessEnv struct {
	t       *testing.T
	keys    *testKeys
	store   *boltstore.Store
	hub     *viewsync.Hub
	sockets *ws.Handler
	srv     *httptest.Server
	base    string
	policy  *auth.Policy
	// conns is the connection limit, nil without one.
	conns *limit.Conns
	// denied counts the Policy's refusals and the connection limit's
	// (as "too_many_connections"); met gets them too.
	denied *deniedCounter
	met    *metrics.Prometheus
}

// Call handlers registered on every access server.
const (
	// callBump writes record "bumped" into the collection named by its
	// argument (a string).
	callBump = "bump"
	// callNoop answers "ok" and writes nothing.
	callNoop = "noop"
)

func startAccessServer(t *testing.T, o accessOptions) *accessEnv {
	t.Helper()
	k := keys(t)
	ks, err := auth.ParseJWKS(k.jwks)
	if err != nil {
		t.Fatalf("JWKS: %v", err)
	}
	verifier, err := auth.NewJWT(auth.JWTOptions{
		Secret:   k.secret,
		Keys:     ks,
		Audience: testAudience,
		Issuer:   testIssuer,
		Leeway:   0,
	})
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	e := &accessEnv{t: t, keys: k, denied: &deniedCounter{}, met: metrics.New()}
	e.policy = &auth.Policy{
		Authenticate: verifier.Authenticate,
		Commits:      o.commits,
		Calls:        o.calls,
		Denied: func(code string) {
			e.denied.add(code)
			e.met.Denied(code)
		},
	}

	e.store, err = boltstore.Open(filepath.Join(t.TempDir(), "viewsync.db"), &boltstore.Options{NoSync: !o.durable})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.hub, err = viewsync.New(e.store, viewsync.WithMetrics(e.met))
	if err != nil {
		e.store.Close()
		t.Fatalf("hub: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			e.hub.Close()
			e.store.Close()
			t.Fatal(err)
		}
	}
	must(e.hub.HandleCall(callBump, func(ctx context.Context, call *viewsync.Call) (any, error) {
		var name string
		if err := json.Unmarshal(call.Arg, &name); err != nil {
			return nil, &viewsync.CallError{Code: protocol.CodeBadRequest, Message: "arg: a collection name"}
		}
		col, err := call.Collection(name)
		if err != nil {
			return nil, err
		}
		rec, err := col.Put(ctx, "bumped", json.RawMessage(`{"by":"`+callBump+`"}`))
		if err != nil {
			return nil, err
		}
		return map[string]uint64{"version": rec.Version}, nil
	}))
	must(e.hub.HandleCall(callNoop, func(context.Context, *viewsync.Call) (any, error) { return "ok", nil }))

	events, err := sse.New(e.hub, &sse.Options{Policy: e.policy})
	must(err)
	lines, err := ndjson.New(e.hub, &ndjson.Options{Policy: e.policy})
	must(err)
	e.sockets, err = ws.New(e.hub, &ws.Options{Policy: e.policy})
	must(err)
	api, err := httpapi.New(e.hub, &httpapi.Options{
		Policy: e.policy, Events: events, Stream: lines, WebSocket: e.sockets,
		Metrics: e.met.Handler(), Observer: e.met,
	})
	must(err)
	var h http.Handler = api
	if o.maxConns > 0 {
		e.conns = limit.NewConns(o.maxConns)
		e.conns.Refused = func(*http.Request) {
			e.denied.add("too_many_connections")
			e.met.Denied("too_many_connections")
		}
		h = e.conns.Middleware(h)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	e.srv = httptest.NewUnstartedServer(h)
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.Start()
	e.base = e.srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), accessWait)
		defer cancel()
		if err := e.sockets.Shutdown(ctx); err != nil {
			t.Errorf("WebSocket shutdown: %v", err)
		}
		e.hub.Close()
		e.srv.Close()
		if err := e.store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return e
}

// token mints a valid HS256 token for sub with rights, expiring after ttl.
func (e *accessEnv) token(sub string, rights auth.Rights, ttl time.Duration) string {
	e.t.Helper()
	return signHS(e.t, e.keys.secret, claimsFor(sub, rights, time.Now().Add(ttl)), "")
}

// client returns an HTTP client whose connections come from the local
// address from ("" for the system's choice: 127.0.0.1 towards the
// server). Its idle connections are closed when the test ends.
func (e *accessEnv) client(t *testing.T, from string) *http.Client {
	t.Helper()
	d := &net.Dialer{}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// collState is what a collection holds, read through the hub.
type collState struct {
	head protocol.Head
	snap protocol.Snapshot
}

// state reads the heads and snapshots of collections through the hub.
func (e *accessEnv) state(t *testing.T, names ...string) map[string]collState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), accessWait)
	defer cancel()
	m := map[string]collState{}
	for _, n := range names {
		col, err := e.hub.Collection(n)
		if err != nil {
			t.Fatal(err)
		}
		hd, err := col.Head(ctx)
		if err != nil {
			t.Fatalf("head of %s: %v", n, err)
		}
		snap, err := col.Snapshot(ctx)
		if err != nil {
			t.Fatalf("snapshot of %s: %v", n, err)
		}
		m[n] = collState{head: hd, snap: snap}
	}
	return m
}

// checkUnchanged fails the test when any collection of before changed.
func (e *accessEnv) checkUnchanged(t *testing.T, before map[string]collState) {
	t.Helper()
	names := make([]string, 0, len(before))
	for n := range before {
		names = append(names, n)
	}
	after := e.state(t, names...)
	for n, b := range before {
		a := after[n]
		if a.head != b.head {
			t.Errorf("collection %s changed: head %s:%d → %s:%d", n, b.head.Epoch, b.head.Version, a.head.Epoch, a.head.Version)
			continue
		}
		if !reflect.DeepEqual(a.snap, b.snap) {
			t.Errorf("collection %s changed at the same head:\nbefore %+v\nafter  %+v", n, b.snap, a.snap)
		}
	}
}

// put writes a record through the hub.
func (e *accessEnv) put(t *testing.T, coll, id, value string) uint64 {
	t.Helper()
	col, err := e.hub.Collection(coll)
	if err != nil {
		t.Fatal(err)
	}
	r, err := col.Put(context.Background(), id, json.RawMessage(value))
	if err != nil {
		t.Fatalf("put %s/%s: %v", coll, id, err)
	}
	return r.Version
}

// reply is a whole HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) String() string {
	return fmt.Sprintf("%d %s", r.status, strings.TrimSpace(string(r.body)))
}

// do sends req and reads its whole answer.
func do(client *http.Client, req *http.Request) (reply, error) {
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// refusalError describes how r is not the refusal wanted (status, code,
// and a message containing reason), or returns nil: the contract's error
// body as JSON, WWW-Authenticate: Bearer on 401, Retry-After (whole
// seconds, at least 1) on 429.
func refusalError(r reply, status int, code protocol.Code, reason string) error {
	if r.status != status {
		return fmt.Errorf("got %s, want status %d (%s)", r, status, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("refusal with Content-Type %q: %s", ct, r)
	}
	var body struct {
		Error *protocol.Error `json:"error"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error == nil {
		return fmt.Errorf("refusal body is not the contract's error (%v): %s", err, r)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		return fmt.Errorf("refusal %s, want code %s and a message", r, code)
	}
	if reason != "" && !strings.Contains(body.Error.Message, reason) {
		return fmt.Errorf("refusal %s does not give the reason %q", r, reason)
	}
	switch status {
	case http.StatusUnauthorized:
		if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
			return fmt.Errorf("401 with WWW-Authenticate %q, want a Bearer challenge: %s", h, r)
		}
	case http.StatusTooManyRequests:
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
			return fmt.Errorf("429 with Retry-After %q, want whole seconds ≥ 1: %s", r.header.Get("Retry-After"), r)
		}
	}
	return nil
}

// Where a token travels.
type placement int

const (
	inHeader placement = iota // Authorization: Bearer
	inQuery                   // ?token=
	inCookie                  // viewsync_token cookie
)

func (p placement) String() string {
	return [...]string{"Authorization header", "token query parameter", "viewsync_token cookie"}[p]
}

// attach puts token into req at p. missing sends none; scheme, when set,
// replaces "Bearer" in the header.
func attach(req *http.Request, p placement, token string, missing bool, scheme string) {
	if missing {
		return
	}
	switch p {
	case inHeader:
		if scheme == "" {
			scheme = "Bearer"
		}
		req.Header.Set("Authorization", scheme+" "+token)
	case inQuery:
		q := req.URL.Query()
		q.Set("token", token)
		req.URL.RawQuery = q.Encode()
	case inCookie:
		req.AddCookie(&http.Cookie{Name: auth.DefaultCookie, Value: token})
	}
}

// sseMsg is one event of a stream.
type sseMsg struct {
	id, event, data string
}

// sseStream reads the events of one open stream.
type sseStream struct {
	resp   *http.Response
	br     *bufio.Reader
	cancel context.CancelFunc
}

// openSSE GETs url (prepared by prep) and returns the stream on 200, or
// the whole answer otherwise. The stream is bounded by accessWait.
func openSSE(ctx context.Context, client *http.Client, url string, prep func(*http.Request)) (*sseStream, reply, error) {
	ctx, cancel := context.WithTimeout(ctx, accessWait)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, reply{}, err
	}
	if prep != nil {
		prep(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, reply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return nil, reply{status: resp.StatusCode, header: resp.Header, body: b}, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		resp.Body.Close()
		cancel()
		return nil, reply{}, fmt.Errorf("event stream with Content-Type %q", ct)
	}
	return &sseStream{resp: resp, br: bufio.NewReader(resp.Body), cancel: cancel}, reply{status: http.StatusOK, header: resp.Header}, nil
}

// next returns the next event, skipping comments and field-less blocks
// (the retry hint). io.EOF means the server ended the stream.
func (s *sseStream) next() (sseMsg, error) {
	var m sseMsg
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" {
				return sseMsg{}, io.EOF
			}
			return sseMsg{}, fmt.Errorf("reading the stream: %w (partial line %q)", err, line)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if m.event != "" || m.data != "" {
				return m, nil
			}
			m = sseMsg{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			m.id = value
		case "event":
			m.event = value
		case "data":
			if m.data != "" {
				m.data += "\n"
			}
			m.data += value
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// wsURL is the WebSocket endpoint of base.
func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/v1/ws" }

// dialWS opens a WebSocket with the viewsync.v1 subprotocol, the token at
// p (inQuery or inHeader). On a refused upgrade it returns the answer.
func dialWS(ctx context.Context, client *http.Client, base string, p placement, token string, missing bool, scheme string) (*wstest.Client, reply, error) {
	req, _ := http.NewRequest(http.MethodGet, wsURL(base), nil)
	attach(req, p, token, missing, scheme)
	c, resp, err := wstest.Dial(ctx, req.URL.String(), &wstest.Options{
		Subprotocols: []string{protocol.WSSubprotocol},
		Header:       req.Header,
		NetDial:      wstest.NetDialOf(client),
	})
	if err != nil {
		var r reply
		if resp != nil {
			r = reply{status: resp.StatusCode, header: resp.Header}
			r.body, _ = io.ReadAll(resp.Body)
		}
		return nil, r, err
	}
	return c, reply{status: http.StatusSwitchingProtocols}, nil
}

// wsSend writes one client message.
func wsSend(ctx context.Context, c *wstest.Client, m protocol.ClientMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.WriteMessage(ctx, gws.OpText, b)
}

// wsRead reads the next server message.
func wsRead(ctx context.Context, c *wstest.Client) (protocol.ServerMessage, error) {
	op, b, err := c.ReadMessage(ctx)
	if err != nil {
		return protocol.ServerMessage{}, err
	}
	if op != gws.OpText {
		return protocol.ServerMessage{}, fmt.Errorf("server sent a message of opcode %d", op)
	}
	m, err := protocol.DecodeServerMessage(b)
	if err != nil {
		return m, fmt.Errorf("%w: %.200s", err, b)
	}
	return m, nil
}

// waitUntil polls cond until it holds; it fails the test when ctx ends
// first (a hang guard).
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting until %s: %v", what, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// scrapeDenied reads viewsync_denied_total by code from the server's
// /metrics.
func (e *accessEnv) scrapeDenied(t *testing.T, client *http.Client) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+"/metrics", nil)
	r, err := do(client, req)
	if err != nil || r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", r, err)
	}
	m := map[string]float64{}
	const prefix = `viewsync_denied_total{code="`
	for line := range strings.Lines(string(r.body)) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix)
		if !ok {
			continue
		}
		code, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[code] = v
	}
	return m
}
