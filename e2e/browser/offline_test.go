package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// apiProxy stands between the pages and a server: the pages load from
// it, so that it can take the API away from them (offline: every request
// under /v1/ is hung up on, the connections open are cut) while the page
// itself still loads, and lose the answer of one request on its way back.
// It notes every write that carries an Idempotency-Key.
type apiProxy struct {
	t     *testing.T
	srv   *httptest.Server
	url   string
	rp    *httputil.ReverseProxy
	tr    *http.Transport
	upstr *url.URL

	mu      sync.Mutex
	offline bool
	drop    func(*http.Request) bool // the answer of the first request it matches is lost
	conns   map[net.Conn]bool
	writes  []keyedWrite
}

// keyedWrite is a request with an Idempotency-Key as the proxy saw it.
type keyedWrite struct {
	Method, Path, Key string
	Status            int
	Replayed          bool // the answer had Idempotent-Replayed: true
	Lost              bool // the proxy lost the answer
}

// newAPIProxy starts a proxy in front of the server at target; t.Cleanup
// stops it.
func newAPIProxy(t *testing.T, target string) *apiProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &apiProxy{t: t, upstr: u, conns: map[net.Conn]bool{}, tr: &http.Transport{}}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.Transport = p.tr
	p.rp.ErrorLog = nil
	p.srv = httptest.NewUnstartedServer(p)
	p.srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch st {
		case http.StateNew:
			p.conns[c] = true
		case http.StateClosed:
			delete(p.conns, c)
		}
	}
	p.srv.Start()
	p.url = p.srv.URL
	t.Cleanup(func() {
		p.cut()
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// setOffline takes the API away from the pages (true) or gives it back.
func (p *apiProxy) setOffline(off bool) {
	p.mu.Lock()
	p.offline = off
	p.mu.Unlock()
	if off {
		p.cut()
	}
}

// cut closes every connection to the proxy (WebSockets included).
func (p *apiProxy) cut() {
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// loseFirst makes the proxy lose the answer of the first request that
// match accepts: it is forwarded and answered, and the page gets no answer.
func (p *apiProxy) loseFirst(match func(*http.Request) bool) {
	p.mu.Lock()
	p.drop = match
	p.mu.Unlock()
}

// keyed returns the writes with an Idempotency-Key seen so far whose path
// ends with suffix.
func (p *apiProxy) keyed(method, suffix string) []keyedWrite {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []keyedWrite
	for _, w := range p.writes {
		if w.Method == method && strings.HasSuffix(w.Path, suffix) {
			out = append(out, w)
		}
	}
	return out
}

func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func (p *apiProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api := strings.HasPrefix(r.URL.Path, "/v1/")
	key := r.Header.Get("Idempotency-Key")
	p.mu.Lock()
	off := p.offline
	lose := api && !off && p.drop != nil && p.drop(r)
	if lose {
		p.drop = nil
	}
	p.mu.Unlock()
	switch {
	case api && off:
		hangUp(w)
	case lose:
		req := r.Clone(r.Context())
		req.RequestURI = ""
		req.URL.Scheme, req.URL.Host = p.upstr.Scheme, p.upstr.Host
		res, err := p.tr.RoundTrip(req)
		if err != nil {
			p.t.Errorf("proxy: forwarding %s %s: %v", r.Method, r.URL.Path, err)
			hangUp(w)
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		p.note(keyedWrite{Method: r.Method, Path: r.URL.Path, Key: key, Status: res.StatusCode, Replayed: res.Header.Get("Idempotent-Replayed") == "true", Lost: true})
		hangUp(w)
	case key != "":
		rec := &statusWriter{ResponseWriter: w}
		p.rp.ServeHTTP(rec, r)
		p.note(keyedWrite{Method: r.Method, Path: r.URL.Path, Key: key, Status: rec.status, Replayed: rec.Header().Get("Idempotent-Replayed") == "true"})
	default:
		p.rp.ServeHTTP(w, r)
	}
}

func (p *apiProxy) note(w keyedWrite) {
	p.mu.Lock()
	p.writes = append(p.writes, w)
	p.mu.Unlock()
}

// statusWriter notes the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// waitAsync polls the JavaScript expression expr, which may be a promise,
// every 50ms until its value is truthy, and decodes that value into out
// (when not nil); it fails the test when timeout passes first.
func (p *page) waitAsync(what, expr string, timeout time.Duration, out any) {
	p.t.Helper()
	var res struct {
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	poll := fmt.Sprintf(`(async () => {
  const deadline = Date.now() + %d;
  let last = '';
  for (;;) {
    try {
      const v = await (%s);
      if (v) return { ok: true, value: v };
    } catch (e) {
      last = String(e && e.stack || e);
    }
    if (Date.now() > deadline) return { ok: false, error: last };
    await new Promise((r) => setTimeout(r, 50));
  }
})()`, timeout.Milliseconds(), expr)
	ctx, cancel := context.WithTimeout(p.ctx, timeout+actionTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](poll, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("page %s: waiting for %s: %v\nstate: %s", p.name, what, err, p.dump())
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		p.t.Fatalf("page %s: waiting for %s: decoding %s: %v", p.name, what, raw, err)
	}
	if !res.OK {
		p.t.Fatalf("page %s: %s: not within %v (last error: %s)\nstate: %s", p.name, what, timeout, res.Error, p.dump())
	}
	if out != nil {
		if err := json.Unmarshal(res.Value, out); err != nil {
			p.t.Fatalf("page %s: %s: decoding %s: %v", p.name, what, res.Value, err)
		}
	}
}

// cachedRecordsJS is a JavaScript promise: how many records the page's
// IndexedDB cache holds, over every view (the database exists once the
// page has opened it).
const cachedRecordsJS = `new Promise((resolve, reject) => {
  const req = indexedDB.open('viewsync', 2);
  req.onerror = () => reject(req.error);
  req.onsuccess = () => {
    const db = req.result;
    const n = db.transaction('recs').objectStore('recs').count();
    n.onsuccess = () => { db.close(); resolve(n.result); };
    n.onerror = () => { db.close(); reject(n.error); };
  };
})`

// syncJS is a JavaScript expression: the demo's sync note, {state, pending, text}.
const syncJS = `((s) => ({ state: s.dataset.state, pending: Number(s.dataset.pending), text: s.hidden ? '' : s.textContent }))(document.querySelector('[data-testid="sync-status"]'))`

// pendingJS is a JavaScript expression: whether the row of product id shows a pending write.
func pendingJS(id string) string {
	return `!!document.querySelector(` + js(rowSel(id)) + `)?.classList.contains('vs-pending')`
}

// reload reloads the page and waits for it to load.
func (p *page) reload() {
	p.t.Helper()
	p.do("reloading", chromedp.Reload())
}

// goOffline takes the API away and waits for the page to see it.
func goOffline(px *apiProxy, pages ...*page) {
	px.setOffline(true)
	for _, p := range pages {
		p.waitFor("the page off the server", `document.querySelector('[data-testid="status-badge"]').dataset.state !== 'live'`, changeTimeout, nil)
	}
}

// TestOfflineLoadFromCache: a page that was live once loads again with
// the API unreachable and shows the products from its cache at once,
// marked as the copy kept offline; when the API is back it resumes from
// the cached cursor (no second snapshot) and shows what changed meanwhile.
func TestOfflineLoadFromCache(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	srv.putLampAndChair()
	px := newAPIProxy(t, srv.url)

	a := b.open(t, "A", px.url+"/")
	a.waitLive("")
	a.waitRow("p-2-chair", "shown", `r && r.name === 'Old chair'`, changeTimeout)
	a.waitAsync("both products in the cache", cachedRecordsJS+`.then((n) => n === 2)`, changeTimeout, nil)

	goOffline(px, a)
	a.reload()
	a.waitRow("p-1-lamp", "shown from the cache", `r && r.name === 'Desk lamp' && r.price === '30.00'`, changeTimeout)
	a.waitRow("p-2-chair", "shown from the cache", `r && r.name === 'Old chair'`, changeTimeout)
	var shownAt float64
	a.eval("reading the page's clock", `performance.now()`, &shownAt)
	t.Logf("offline reload: the cached rows were shown %.0f ms after navigation start (read after the wait)", shownAt)
	var st struct {
		State   string `json:"state"`
		Pending int    `json:"pending"`
		Text    string `json:"text"`
	}
	a.waitFor("the sync note saying cached", `((s) => s.state === 'cached' && s)(`+syncJS+`)`, changeTimeout, &st)
	if st.Text != "Showing the copy kept offline" {
		t.Errorf("sync note %q, want %q", st.Text, "Showing the copy kept offline")
	}
	var cached bool
	a.eval("reading view.cached", `viewsyncDemo.view.cached && viewsyncDemo.session.status.state !== 'live'`, &cached)
	if !cached {
		t.Error("view.cached is false while the API is unreachable")
	}

	// Meanwhile on the server; then the API comes back.
	srv.patch("p-1-lamp", map[string]any{"name": "Desk lamp, renamed"})
	px.setOffline(false)
	a.waitLive("")
	a.waitRow("p-1-lamp", "the rename shown", `r && r.name === 'Desk lamp, renamed'`, 2*changeTimeout)
	a.waitFor("the sync note saying live", `((s) => s.state === 'live')(`+syncJS+`)`, changeTimeout, nil)
	var resets int
	a.eval("counting snapshots", `document.querySelectorAll('[data-testid="sync-entry"].reset').length`, &resets)
	if resets != 1 {
		t.Errorf("%d snapshots in the sync log, want the cache's alone: the page must resume from the cached cursor", resets)
	}
	if a.eval("view.cached", `viewsyncDemo.view.cached`, &cached); cached {
		t.Error("view.cached is still true once live")
	}
}

// TestOfflineEditsReachServerOnce: edits made with the API unreachable (a
// product renamed in place, a product added) show at once as pending,
// survive a reload, and once the API is back reach the server and another
// page (on another origin: nothing shared) — each applied once, also when
// the first answer to one of them is lost on its way back (the resend
// carries the same Idempotency-Key and gets the first answer again).
func TestOfflineEditsReachServerOnce(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	srv.putLampAndChair()
	px := newAPIProxy(t, srv.url)

	a := b.open(t, "A", px.url+"/")
	other := b.open(t, "other", srv.url+"/")
	for _, p := range []*page{a, other} {
		p.waitLive("")
		p.waitRow("p-1-lamp", "shown", `r && r.name === 'Desk lamp'`, changeTimeout)
	}

	goOffline(px, a)
	a.do("renaming the lamp offline",
		typeInto(inRow("p-1-lamp", "product-name"), "Lamp renamed offline"),
		chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-save"))),
	)
	a.waitRow("p-1-lamp", "saved, pending", `r && !r.dirty && !r.saving && r.name === 'Lamp renamed offline' && `+pendingJS("p-1-lamp"), changeTimeout)
	a.do("adding a product offline",
		typeInto(tid("add-name"), "Kettle added offline"),
		typeInto(tid("add-description"), "steel"),
		typeInto(tid("add-price"), "12.5"),
		chromedp.Click(chromedp.CSS(tid("add-submit"))),
	)
	id := a.findRowByName("Kettle added offline", changeTimeout)
	a.waitFor("the sync note: offline, 2 pending", `((s) => s.state === 'offline' && s.pending === 2 && s.text === 'Offline · 2 pending')(`+syncJS+`)`, changeTimeout, nil)

	// The outbox survives a reload.
	a.reload()
	a.waitRow("p-1-lamp", "pending after the reload", `r && r.name === 'Lamp renamed offline' && `+pendingJS("p-1-lamp"), changeTimeout)
	a.waitRow(id, "the new product pending after the reload", `r && r.name === 'Kettle added offline' && r.price === '12.50' && `+pendingJS(id), changeTimeout)
	a.waitFor("2 pending after the reload", `((s) => s.state === 'offline' && s.pending === 2)(`+syncJS+`)`, changeTimeout, nil)
	if got := srv.get("p-1-lamp").Value.Name; got != "Desk lamp" {
		t.Fatalf("server: the lamp is named %q while the page is offline", got)
	}
	var before struct {
		Version uint64 `json:"version"`
	}
	srv.do(http.MethodGet, productsPath+"/version", "", nil, &before)

	// Back online; the first answer to the lamp's PUT is lost.
	px.loseFirst(func(r *http.Request) bool {
		return r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/records/p-1-lamp")
	})
	back := time.Now()
	px.setOffline(false)
	a.waitLive("")
	other.waitRow("p-1-lamp", "the rename in the other page", `r && r.name === 'Lamp renamed offline'`, 2*changeTimeout)
	t.Logf("the API back → the queued rename shown in the other page: %v (reconnect backoff included)", time.Since(back).Round(time.Millisecond))
	other.waitRow(id, "the new product in the other page", `r && r.name === 'Kettle added offline' && r.price === '12.50'`, changeTimeout)
	a.waitFor("the sync note: live", `((s) => s.state === 'live' && s.pending === 0)(`+syncJS+`)`, 2*changeTimeout, nil)
	a.waitRow("p-1-lamp", "no longer pending", `r && r.name === 'Lamp renamed offline' && !r.inConflict && !`+pendingJS("p-1-lamp"), changeTimeout)
	a.waitRow(id, "the new product no longer pending", `r && !`+pendingJS(id), changeTimeout)

	var after struct {
		Version uint64 `json:"version"`
	}
	srv.do(http.MethodGet, productsPath+"/version", "", nil, &after)
	if after.Version != before.Version+2 {
		t.Errorf("server: version %d → %d, want two commits (each write applied once)", before.Version, after.Version)
	}
	lamp := px.keyed(http.MethodPut, "/records/p-1-lamp")
	if len(lamp) != 2 || !lamp[0].Lost || lamp[0].Key == "" || lamp[1].Key != lamp[0].Key || lamp[1].Status != http.StatusOK || !lamp[1].Replayed {
		t.Errorf("the lamp's PUTs: %+v; want the lost one, then one resend with the same key answered 200 with Idempotent-Replayed", lamp)
	}
	added := px.keyed(http.MethodPut, "/records/"+id)
	if len(added) != 1 || added[0].Key == "" || added[0].Key == lamp[0].Key || added[0].Status != http.StatusOK {
		t.Errorf("the new product's PUTs: %+v; want one, with a key of its own, answered 200", added)
	}
	var errBanner string
	a.eval("reading the error banner", `((e) => e.hidden ? '' : e.textContent)(document.querySelector('[data-testid="error-banner"]'))`, &errBanner)
	if errBanner != "" {
		t.Errorf("page A shows an error: %q", errBanner)
	}
}

// TestOfflineConflict: a row saved offline whose product someone else
// changes meanwhile is refused on arrival (412); the row shows the
// conflict UI with the offline value kept, and keep mine writes it.
func TestOfflineConflict(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	srv.put("p-1-lamp", product{Name: "Desk lamp", Description: "brass", Price: 30})
	px := newAPIProxy(t, srv.url)

	a := b.open(t, "A", px.url+"/")
	a.waitLive("")
	a.waitRow("p-1-lamp", "shown", `r && r.price === '30.00'`, changeTimeout)

	goOffline(px, a)
	a.do("changing the price offline",
		typeInto(inRow("p-1-lamp", "product-price"), "25.00"),
		chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-save"))),
	)
	a.waitRow("p-1-lamp", "saved, pending", `r && !r.dirty && r.price === '25.00' && `+pendingJS("p-1-lamp"), changeTimeout)
	srv.patch("p-1-lamp", map[string]any{"price": 40})

	px.setOffline(false)
	// The refusal and the other write's commit may come in either order:
	// the conflict shows theirs once the page has it.
	row := a.waitRow("p-1-lamp", "in conflict with theirs", `r && r.inConflict && r.conflictShown && r.ref === 'ref 2'`, 2*changeTimeout)
	if row.Price != "25.00" || row.Conflict != "price" || !strings.Contains(row.ConflictText, "40.00") {
		t.Errorf("row in conflict: %+v; want my price 25.00 kept, the conflict on price naming theirs (40.00)", row)
	}
	if got := srv.get("p-1-lamp").Value.Price; got != 40 {
		t.Fatalf("server: price %v after the refused write, want 40", got)
	}
	a.do("keeping mine", chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-keep-mine"))))
	a.waitRow("p-1-lamp", "resolved", `r && !r.inConflict && !r.dirty && r.price === '25.00' && !`+pendingJS("p-1-lamp"), 2*changeTimeout)
	srv.eventually("the server has my price", changeTimeout, func() error {
		if got := srv.get("p-1-lamp").Value.Price; got != 25 {
			return fmt.Errorf("price %v", got)
		}
		return nil
	})
}

// TestOfflineTwoTabsOneOutbox: two tabs of one origin share the outbox: a
// row saved in tab A while offline shows pending in both, is sent once
// (by whichever tab leads), and settles in both.
func TestOfflineTwoTabsOneOutbox(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	srv.put("p-1-lamp", product{Name: "Desk lamp", Description: "brass", Price: 30})
	px := newAPIProxy(t, srv.url)

	a := b.open(t, "A", px.url+"/")
	bb := b.open(t, "B", px.url+"/")
	for _, p := range []*page{a, bb} {
		p.waitLive("")
		p.waitRow("p-1-lamp", "shown", `r && r.name === 'Desk lamp'`, changeTimeout)
	}
	goOffline(px, a, bb)
	a.do("renaming offline in A",
		typeInto(inRow("p-1-lamp", "product-name"), "Renamed in tab A"),
		chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-save"))),
	)
	for _, p := range []*page{a, bb} {
		p.waitRow("p-1-lamp", "pending in both tabs", `r && r.name === 'Renamed in tab A' && `+pendingJS("p-1-lamp"), changeTimeout)
		p.waitFor("1 pending in both tabs", `((s) => s.state === 'offline' && s.pending === 1)(`+syncJS+`)`, changeTimeout, nil)
	}
	px.setOffline(false)
	for _, p := range []*page{a, bb} {
		p.waitFor("live, nothing pending", `((s) => s.state === 'live' && s.pending === 0)(`+syncJS+`)`, 2*changeTimeout, nil)
		p.waitRow("p-1-lamp", "settled", `r && r.name === 'Renamed in tab A' && !r.inConflict && !`+pendingJS("p-1-lamp"), changeTimeout)
	}
	if got := srv.get("p-1-lamp"); got.Value.Name != "Renamed in tab A" || got.Version != 2 {
		t.Errorf("server: %+v; want the rename, applied once (version 2)", got)
	}
	if puts := px.keyed(http.MethodPut, "/records/p-1-lamp"); len(puts) != 1 || puts[0].Status != http.StatusOK {
		t.Errorf("the PUTs of the rename: %+v; want one, by one tab", puts)
	}
}
