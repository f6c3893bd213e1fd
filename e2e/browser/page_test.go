package browser

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// defaultChromium is where Debian's chromium package puts the browser.
const defaultChromium = "/usr/bin/chromium"

// Deadlines of the waits in the page. Chromium on a small, busy machine
// (CI runs every package at once, under the race detector) is slow; these
// bound failures, they are not delays.
const (
	liveTimeout   = 20 * time.Second // a page connects
	changeTimeout = 15 * time.Second // a change reaches a page (poll: every 2s)
	actionTimeout = 15 * time.Second // one browser action
)

// chromiumPath finds the browser: $VIEWSYNC_CHROMIUM, /usr/bin/chromium,
// or chromium / chromium-browser on PATH. Without one the test fails: the
// browser tests are part of the suite, not an option.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIEWSYNC_CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("VIEWSYNC_CHROMIUM=%s: %v: point it at Chromium, or unset it to use %s (Debian: apt-get install chromium)", p, err, defaultChromium)
		}
		return p
	}
	if _, err := exec.LookPath(defaultChromium); err == nil {
		return defaultChromium
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("Chromium not found (looked for $VIEWSYNC_CHROMIUM, %s, chromium and chromium-browser on PATH): "+
		"the browser tests need it. Install it — Debian/Ubuntu: apt-get install chromium (scripts/test.sh does) — "+
		"or set VIEWSYNC_CHROMIUM to the browser's path", defaultChromium)
	return ""
}

// browser is one headless Chromium process; each page is a tab of it.
type browser struct {
	ctx context.Context // has the browser started; tabs are its children
	out *syncBuffer     // the browser's stdout and stderr
}

// newBrowser starts Chromium for t with a fresh profile; t.Cleanup ends it.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	b := &browser{out: &syncBuffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 800),
		chromedp.CombinedOutput(b.out),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel) // waits for the browser to exit
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Chromium output:\n%s", b.out.String())
		}
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting Chromium (%s): %v\n%s", exe, err, b.out.String())
	}
	b.ctx = bctx
	return b
}

// page is one tab, showing the demo.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu       sync.Mutex
	console  []string                   // console messages, shown when the test fails
	faults   []string                   // uncaught exceptions, unhandled rejections, CSP violations: each fails the test
	requests []sentRequest              // the HTTP requests the page sent, in order
	ended    map[network.RequestID]bool // the requests whose loading finished or failed (was cancelled)
	wsSent   []string                   // the text of the WebSocket frames the page sent, in order
}

// sentRequest is an HTTP request a page sent.
type sentRequest struct {
	ID            network.RequestID
	URL           string
	Authorization string // its Authorization header, "" when none
	Ended         bool   // it has finished or failed, as of the call that returned it
}

// screen is what a tab emulates: its viewport in CSS pixels (at one
// device pixel per CSS pixel), a phone's (mobile, with touch) or not, and
// which colour scheme and motion it prefers.
type screen struct {
	width, height int64
	mobile        bool
	dark          bool
	still         bool // prefers reduced motion: no animations
}

// desktop is the screen of the tabs open opens.
var desktop = screen{width: 1200, height: 800}

// phone is a phone's screen, held upright.
var phone = screen{width: 390, height: 844, mobile: true}

// emulate makes the tab of ctx emulate sc.
func (sc screen) emulate(ctx context.Context) error {
	var opts []chromedp.EmulateViewportOption
	if sc.mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(sc.width, sc.height, opts...)); err != nil {
		return err
	}
	scheme, motion := "light", "no-preference"
	if sc.dark {
		scheme = "dark"
	}
	if sc.still {
		motion = "reduce"
	}
	_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{
			{Name: "prefers-color-scheme", Value: scheme},
			{Name: "prefers-reduced-motion", Value: motion},
		},
	})
	return err
}

// open opens url in a new tab named name (for messages) on the desktop
// screen, waits for it to load, and returns it; each of before runs on the
// tab first (to set up the browser's side of the network, say). The tab is
// closed in t.Cleanup. An uncaught exception, an unhandled rejection or a
// Content-Security-Policy violation in it fails t.
func (b *browser) open(t *testing.T, name, url string, before ...func(context.Context) error) *page {
	t.Helper()
	return b.openOn(t, name, url, desktop, before...)
}

// openOn is open on the screen sc.
func (b *browser) openOn(t *testing.T, name, url string, sc screen, before ...func(context.Context) error) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	t.Cleanup(cancel)
	p := &page{t: t, name: name, ctx: ctx, ended: map[network.RequestID]bool{}}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("page %s: opening a tab: %v", name, err)
	}
	if err := chromedp.Listen(ctx, p.onEvent); err != nil {
		t.Fatalf("page %s: listening to the console: %v", name, err)
	}
	t.Cleanup(func() {
		p.mu.Lock()
		faults, msgs := p.faults, p.console
		p.mu.Unlock()
		for _, f := range faults {
			t.Errorf("page %s: %s", name, f)
		}
		if t.Failed() {
			t.Logf("page %s: console:\n  %s", name, strings.Join(msgs, "\n  "))
			t.Logf("page %s: state: %s", name, p.dump())
		}
	})
	tctx, tcancel := context.WithTimeout(ctx, actionTimeout)
	defer tcancel()
	if _, err := chromedp.Call(tctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("page %s: enabling the browser log: %v", name, err)
	}
	// Every tab thinks it has the focus, as a window in front would: focus
	// and blur then behave the same in each tab, whichever is in front.
	if _, err := chromedp.Call(tctx, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true}); err != nil {
		t.Fatalf("page %s: focus emulation: %v", name, err)
	}
	for _, f := range before {
		if err := f(tctx); err != nil {
			t.Fatalf("page %s: before opening %s: %v", name, url, err)
		}
	}
	if err := sc.emulate(tctx); err != nil {
		t.Fatalf("page %s: emulating %+v: %v", name, sc, err)
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("page %s: opening %s: %v", name, url, err)
	}
	return p
}

func (p *page) onEvent(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		p.console = append(p.console, fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(args, " ")))
	case *cdplog.EventEntryAdded:
		e := ev.Entry
		line := fmt.Sprintf("log %s/%s: %s", e.Source, e.Level, e.Text)
		if e.URL != "" {
			line += " (" + e.URL + ")"
		}
		p.console = append(p.console, line)
		if e.Source == cdplog.EntrySourceSecurity {
			// The demo's Content-Security-Policy refused something.
			p.faults = append(p.faults, "policy violation: "+line)
		}
	case *network.EventRequestWillBeSent:
		if r := ev.Request; r != nil {
			var auth string
			for k, v := range r.Headers {
				if s, ok := v.(string); ok && strings.EqualFold(k, "Authorization") {
					auth = s
				}
			}
			p.requests = append(p.requests, sentRequest{ID: ev.RequestID, URL: r.URL, Authorization: auth})
		}
	case *network.EventLoadingFinished:
		p.ended[ev.RequestID] = true
	case *network.EventLoadingFailed:
		p.ended[ev.RequestID] = true
	case *network.EventWebSocketFrameSent:
		if ev.Response != nil {
			p.wsSent = append(p.wsSent, string(ev.Response.PayloadData))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		p.faults = append(p.faults, fmt.Sprintf("uncaught: %s (%s:%d)", text, d.URL, d.LineNumber+1))
	}
}

// sent returns the HTTP requests the page sent so far whose URL contains
// part.
func (p *page) sent(part string) []sentRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []sentRequest
	for _, r := range p.requests {
		if strings.Contains(r.URL, part) {
			out = append(out, r)
		}
	}
	return out
}

// sentSince returns the HTTP requests the page sent, from the i-th on
// (0: all), each with Ended as of now.
func (p *page) sentSince(i int) []sentRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]sentRequest, 0, max(len(p.requests)-i, 0))
	for _, r := range p.requests[min(i, len(p.requests)):] {
		r.Ended = p.ended[r.ID]
		out = append(out, r)
	}
	return out
}

// framesSince returns the text of the WebSocket frames the page sent, from
// the i-th on (0: all).
func (p *page) framesSince(i int) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.wsSent[min(i, len(p.wsSent)):]...)
}

// eval evaluates a JavaScript expression in the page (awaiting it if it is a
// promise) and decodes its JSON value into out (when not nil).
func (p *page) eval(what, expr string, out any) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("page %s: %s: %v", p.name, what, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			p.t.Fatalf("page %s: %s: decoding %s: %v", p.name, what, raw, err)
		}
	}
}

// waitFor polls the JavaScript expression cond in the page every 20ms
// until it is truthy, decodes that value into out (when not nil), and
// fails the test when timeout passes first. A cond that throws counts as
// false (the element it reads may not be there yet); its last error is
// reported on timeout.
func (p *page) waitFor(what, cond string, timeout time.Duration, out any) {
	p.t.Helper()
	expr := fmt.Sprintf(`(async () => {
  const deadline = Date.now() + %d;
  let last = '';
  for (;;) {
    try {
      const v = (%s);
      if (v) return { ok: true, value: v };
    } catch (e) {
      last = String(e && e.stack || e);
    }
    if (Date.now() > deadline) return { ok: false, error: last };
    await new Promise((r) => setTimeout(r, 20));
  }
})()`, timeout.Milliseconds(), cond)
	ctx, cancel := context.WithTimeout(p.ctx, timeout+actionTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("page %s: waiting for %s: %v\nstate: %s", p.name, what, err, p.dump())
	}
	var res struct {
		OK    bool            `json:"ok"`
		Value json.RawMessage `json:"value"`
		Error string          `json:"error"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		p.t.Fatalf("page %s: waiting for %s: decoding %s: %v", p.name, what, raw, err)
	}
	if !res.OK {
		msg := fmt.Sprintf("page %s: %s: not within %v", p.name, what, timeout)
		if res.Error != "" {
			msg += " (last error: " + res.Error + ")"
		}
		p.t.Fatalf("%s\nstate: %s", msg, p.dump())
	}
	if out != nil {
		if err := json.Unmarshal(res.Value, out); err != nil {
			p.t.Fatalf("page %s: %s: decoding %s: %v", p.name, what, res.Value, err)
		}
	}
}

// do runs browser actions (clicks, typing) in the page.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("page %s: %s: %v\nstate: %s", p.name, what, err, p.dump())
	}
}

// typeInto empties a control, as a person deleting its text would (one
// input event), and types text into it key by key: the page sees focus,
// keydown, input and keyup events.
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](`((c) => {
  c.focus();
  c.value = '';
  c.dispatchEvent(new Event('input', { bubbles: true }));
})(document.querySelector(`+js(sel)+`))`),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	)
}

// chooseIn picks the option labelled label in a <select> as a person at
// the keyboard does: focus it and type the label (the browser selects the
// option whose label starts with what was typed, with input and change
// events).
func chooseIn(sel, label string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.SendKeys(chromedp.CSS(sel), label),
	)
}

// dump describes the page for failure messages.
func (p *page) dump() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
  url: location.href,
  badge: ((b) => b && { text: b.textContent, state: b.dataset.state, transport: b.dataset.transport })(document.querySelector('[data-testid="status-badge"]')),
  error: ((e) => e && !e.hidden ? e.textContent : '')(document.querySelector('[data-testid="error-banner"]')),
  rows: [...document.querySelectorAll('[data-testid="product-row"]')].map((r) => ({
    key: r.dataset.key, class: r.className,
    name: r.querySelector('[data-testid="product-name"]').value,
    price: r.querySelector('[data-testid="product-price"]').value,
    category: r.querySelector('[data-testid="product-category"]').value,
    ref: r.querySelector('[data-testid="product-version"]').textContent,
  })),
  log: [...document.querySelectorAll('[data-testid="sync-entry"]')].slice(0, 8).map((e) => e.textContent),
})`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	return s
}

// --- the demo's DOM -----------------------------------------------------------

// tid is the CSS selector of data-testid=id.
func tid(id string) string { return `[data-testid="` + id + `"]` }

// rowSel is the CSS selector of the row of product id (ids in these tests
// are plain ASCII without quotes).
func rowSel(id string) string { return tid("product-row") + `[data-key="` + id + `"]` }

// inRow is the CSS selector of the element testid in the row of product id.
func inRow(id, testid string) string { return rowSel(id) + " " + tid(testid) }

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a Go string always marshals
	}
	return string(b)
}

// rowState is what a product row shows.
type rowState struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	Price         string `json:"price"`
	Category      string `json:"category"` // the value of the category <select>
	Ref           string `json:"ref"`
	Dirty         bool   `json:"dirty"`
	InConflict    bool   `json:"inConflict"` // class vs-conflict
	Saving        bool   `json:"saving"`
	Conflict      string `json:"conflict"`      // data-conflict: the fields, or "deleted"
	ConflictShown bool   `json:"conflictShown"` // the conflict panel is displayed
	ConflictText  string `json:"conflictText"`
	Focused       string `json:"focused"` // data-field or data-action of the focused element in the row
}

// rowJS is a JavaScript expression: the rowState of product id, or null.
func rowJS(id string) string {
	return `((row) => row && ({
  name: row.querySelector('[data-testid="product-name"]').value,
  description: row.querySelector('[data-testid="product-description"]').value,
  price: row.querySelector('[data-testid="product-price"]').value,
  category: row.querySelector('[data-testid="product-category"]').value,
  ref: row.querySelector('[data-testid="product-version"]').textContent,
  dirty: row.classList.contains('vs-dirty'),
  inConflict: row.classList.contains('vs-conflict'),
  saving: row.classList.contains('vs-saving'),
  conflict: row.dataset.conflict || '',
  conflictShown: getComputedStyle(row.querySelector('[data-testid="product-conflict"]')).display !== 'none',
  conflictText: row.querySelector('[data-testid="product-conflict-text"]').textContent,
  focused: ((a) => a && row.contains(a) ? (a.dataset.field || a.dataset.action || a.tagName) : '')(document.activeElement),
}))(document.querySelector(` + js(rowSel(id)) + `))`
}

// waitRow waits until the row of product id satisfies cond, a JavaScript
// expression over r (its rowState, null when there is no row), and returns
// the row's state then (nil when there is none).
func (p *page) waitRow(id, what, cond string, timeout time.Duration) *rowState {
	p.t.Helper()
	var out struct {
		R *rowState `json:"r"`
	}
	p.waitFor(fmt.Sprintf("row %s: %s", id, what), `((r) => (`+cond+`) ? { r } : null)(`+rowJS(id)+`)`, timeout, &out)
	return out.R
}

// waitLive waits until the badge shows the session live on transport (any
// transport when empty).
func (p *page) waitLive(transport string) {
	p.t.Helper()
	cond := `((b) => b.dataset.state === 'live'`
	if transport != "" {
		cond += ` && b.dataset.transport === ` + js(transport)
	}
	cond += `)(document.querySelector('[data-testid="status-badge"]'))`
	p.waitFor("badge live on "+cmp.Or(transport, "any transport"), cond, liveTimeout, nil)
}

// badge returns the badge's state, transport and text.
func (p *page) badge() (state, transport, text string) {
	p.t.Helper()
	var b struct{ State, Transport, Text string }
	p.eval("reading the badge", `((b) => ({ state: b.dataset.state, transport: b.dataset.transport, text: b.textContent }))(document.querySelector('[data-testid="status-badge"]'))`, &b)
	return b.State, b.Transport, b.Text
}

// findRowByName waits for a row whose name input holds name and returns its key.
func (p *page) findRowByName(name string, timeout time.Duration) string {
	p.t.Helper()
	var key string
	p.waitFor("a row named "+name, `[...document.querySelectorAll('[data-testid="product-row"]')]
  .find((r) => r.querySelector('[data-testid="product-name"]').value === `+js(name)+`)?.dataset.key`, timeout, &key)
	return key
}
