package browser

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// filterTransports are the transports TestCategoryFilter runs over: one
// WebSocket subscription per view, one event stream per view, one
// long-poll loop per view.
var filterTransports = []string{"ws", "sse", "longpoll"}

// The products TestCategoryFilter starts with: two categories, and one
// product without.
var filterSeed = []struct {
	id string
	p  product
}{
	{"p-1-lamp", product{Name: "Desk lamp", Description: "brass", Price: 30, Category: "lighting"}},
	{"p-2-bulb", product{Name: "Bulb", Description: "warm white", Price: 4, Category: "lighting"}},
	{"p-3-chair", product{Name: "Reading chair", Description: "oak", Price: 120, Category: "furniture"}},
	{"p-4-table", product{Name: "Side table", Description: "walnut", Price: 80, Category: "furniture"}},
	{"p-5-misc", product{Name: "Gift card", Description: "any amount", Price: 25}},
}

// lightingWhere is the lighting view's filter as the client sends it.
const lightingWhere = `{"category":"lighting"}`

// TestCategoryFilter: page A shows every product, page B one category —
// lighting, from ?category=lighting and again by clicking the filter
// after showing kitchen (empty), a reload (which keeps the choice) and
// all. B shows exactly the lighting products; the views it left are
// closed and their subscriptions dropped (their streams and long-polls
// end; over WebSocket, an unsubscribe each). A product A moves into
// lighting appears in B with all its fields, one A moves out disappears,
// a lighting price A edits changes in B, a lighting product put through
// the API appears and a kitchen one does not, and A's discount reprices
// B's products without dropping their category. B's view and grid never
// hold a product of another category meanwhile, and its log of sync
// references is that view's alone.
func TestCategoryFilter(t *testing.T) {
	b := newBrowser(t)
	for _, tr := range filterTransports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, t.TempDir(), "")
			var all []string
			for _, s := range filterSeed {
				srv.put(s.id, s.p)
				all = append(all, s.id)
			}
			lighting := []string{"p-1-lamp", "p-2-bulb"}

			a := b.open(t, "A", srv.url+"/?transport="+tr)
			// B follows the server only (no cache, no outbox shared with
			// A): its log is then the lighting view's snapshot and what
			// the server sent after it.
			bb := b.open(t, "B", srv.url+"/?transport="+tr+"&persist=0&category=lighting#note=kept")
			for _, p := range []*page{a, bb} {
				p.waitLive(tr)
			}
			a.waitKeys("every product", all...)
			if row := a.waitRow("p-5-misc", "shown without a category", `r`, changeTimeout); row.Category != "" {
				t.Errorf("page A: the product without a category shows category %q", row.Category)
			}
			a.waitRow("p-3-chair", "shown as furniture", `r && r.category === 'furniture'`, changeTimeout)
			bb.waitKeys("the lighting products, from the URL", lighting...)
			bb.checkFilter(tr, "lighting")

			// Kitchen: no product yet, the empty message says so; a reload
			// keeps the choice.
			bb.do("showing kitchen", chromedp.Click(chromedp.CSS(filterButton("kitchen"))))
			bb.waitKeys("no kitchen products")
			bb.checkFilter(tr, "kitchen")
			var empty string
			bb.waitFor("the empty message", `((e) => !e.hidden && e.textContent)(document.querySelector('[data-testid="empty"]'))`, changeTimeout, &empty)
			if !strings.Contains(strings.ToLower(empty), "kitchen") {
				t.Errorf("page B: empty message %q does not name the category", empty)
			}
			sinceReload, framesSinceReload := len(bb.sentSince(0)), len(bb.framesSince(0))
			bb.do("reloading", chromedp.Reload())
			bb.waitLive(tr)
			bb.waitFor("the empty message after the reload", `!document.querySelector('[data-testid="empty"]').hidden`, changeTimeout, nil)
			bb.checkFilter(tr, "kitchen")

			// All, then lighting again, by clicking.
			bb.eval("keeping the kitchen view", `window.__released = [viewsyncDemo.view], true`, nil)
			bb.do("showing all", chromedp.Click(chromedp.CSS(filterButton(""))))
			bb.waitKeys("every product", all...)
			bb.checkFilter(tr, "")
			bb.eval("keeping the view of all", `window.__released.push(viewsyncDemo.view), true`, nil)
			beforeLighting := len(bb.sentSince(0))
			bb.do("showing lighting", chromedp.Click(chromedp.CSS(filterButton("lighting"))))
			bb.waitKeys("the lighting products, after a click", lighting...)
			bb.checkFilter(tr, "lighting")
			bb.checkReleased(tr, sinceReload, beforeLighting, framesSinceReload)

			// From now on, record anything in B's view or grid that is not
			// lighting.
			bb.eval("watching the view", `(() => {
  const view = viewsyncDemo.view;
  const list = document.querySelector('[data-testid="product-list"]');
  const foreign = window.__foreign = [];
  const seen = new Set();
  const note = (when, what) => {
    if (!seen.has(what)) foreign.push(when + ': ' + what);
    seen.add(what);
  };
  const check = (when) => {
    for (const [id, v] of view.records) {
      if (!v || v.category !== 'lighting') note(when, 'the view holds ' + id + ' ' + JSON.stringify(v));
    }
    for (const r of list.querySelectorAll('[data-testid="product-row"]')) {
      const c = r.querySelector('[data-testid="product-category"]').value;
      if (c !== 'lighting') note(when, 'row ' + r.dataset.key + ' shows category ' + JSON.stringify(c));
    }
  };
  view.subscribe((ev) => check('after the ' + ev.type + ' to ' + ev.version));
  new MutationObserver(() => check('after a DOM change')).observe(list, { subtree: true, childList: true, attributes: true, characterData: true });
  check('at the start');
  return true;
})()`, nil)

			// Move in: A makes a furniture product lighting.
			a.do("moving the chair to lighting",
				chooseIn(inRow("p-3-chair", "product-category"), "Lighting"),
				chromedp.Click(chromedp.CSS(inRow("p-3-chair", "product-save"))),
			)
			row := bb.waitRow("p-3-chair", "moved in, with its fields", `r && r.category === 'lighting'`, changeTimeout)
			if row.Name != "Reading chair" || row.Description != "oak" || row.Price != "120.00" || row.Dirty || row.InConflict {
				t.Errorf("page B: the chair moved in as %+v, want Reading chair, oak, 120.00, clean", row)
			}
			a.waitRow("p-3-chair", "saved in A", `r && !r.dirty && !r.saving && r.category === 'lighting'`, changeTimeout)
			srv.eventually("the chair saved on the server", changeTimeout, func() error {
				if got, want := srv.get("p-3-chair").Value, (product{Name: "Reading chair", Description: "oak", Price: 120, Category: "lighting"}); got != want {
					return fmt.Errorf("the chair is %+v, want %+v", got, want)
				}
				return nil
			})

			// Move out: A makes a lighting product furniture.
			a.do("moving the lamp to furniture",
				chooseIn(inRow("p-1-lamp", "product-category"), "Furniture"),
				chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-save"))),
			)
			bb.waitRow("p-1-lamp", "moved out", `!r`, changeTimeout)
			a.waitRow("p-1-lamp", "still in A, as furniture", `r && !r.dirty && r.category === 'furniture'`, changeTimeout)

			// An edit inside the view.
			a.do("repricing the bulb",
				typeInto(inRow("p-2-bulb", "product-price"), "5.5"),
				chromedp.Click(chromedp.CSS(inRow("p-2-bulb", "product-save"))),
			)
			bb.waitRow("p-2-bulb", "repriced", `r && r.price === '5.50' && r.category === 'lighting'`, changeTimeout)

			// Puts through the API: the kitchen product stays out of B. The
			// lantern's commit comes after the kettle's, so once B shows the
			// lantern it has passed the kettle.
			srv.put("p-6-kettle", product{Name: "Kettle", Description: "steel", Price: 35, Category: "kitchen"})
			srv.put("p-7-lantern", product{Name: "Lantern", Description: "tin", Price: 18, Category: "lighting"})
			bb.waitRow("p-7-lantern", "put through the API", `r && r.name === 'Lantern' && r.price === '18.00' && r.category === 'lighting'`, changeTimeout)
			a.waitRow("p-6-kettle", "shown in A", `r && r.category === 'kitchen'`, changeTimeout)
			bb.checkOnlyLighting()
			bb.waitKeys("the lighting products after the moves", "p-2-bulb", "p-3-chair", "p-7-lantern")

			// The discount (A's call) rewrites every product: B's stay, with
			// their new prices.
			a.do("discounting", chromedp.Click(chromedp.CSS(tid("discount-button"))))
			bb.waitRow("p-7-lantern", "discounted", `r && r.price === '16.20' && r.category === 'lighting'`, changeTimeout)
			bb.waitKeys("the lighting products after the discount", "p-2-bulb", "p-3-chair", "p-7-lantern")

			bb.checkOnlyLighting()
			var held map[string]string
			bb.eval("reading the view's records", `Object.fromEntries([...viewsyncDemo.view.records].map(([id, v]) => [id, v.category]))`, &held)
			if want := map[string]string{"p-2-bulb": "lighting", "p-3-chair": "lighting", "p-7-lantern": "lighting"}; !maps.Equal(held, want) {
				t.Errorf("page B's view holds %v, want %v", held, want)
			}
			bb.checkLog()
			bb.checkReleased(tr, sinceReload, beforeLighting, framesSinceReload)
		})
	}
}

// checkOnlyLighting reports what the watch of the page's view and grid
// saw of other categories since it last looked.
func (p *page) checkOnlyLighting() {
	p.t.Helper()
	var foreign []string
	p.eval("reading what the watch saw", `window.__foreign.splice(0)`, &foreign)
	for _, f := range foreign {
		p.t.Errorf("page %s held a product of another category: %s", p.name, f)
	}
}

// filterButton is the CSS selector of the filter's button for category
// ("" for all).
func filterButton(category string) string {
	return tid("category-filter") + ` button[value="` + category + `"]`
}

// waitKeys waits until the grid's rows are exactly the products ids, in
// id order.
func (p *page) waitKeys(what string, ids ...string) {
	p.t.Helper()
	want := append([]string{}, ids...) // [] when none, not null
	slices.Sort(want)
	b, err := json.Marshal(want)
	if err != nil {
		p.t.Fatal(err)
	}
	p.waitFor(what+" "+string(b), `JSON.stringify([...document.querySelectorAll('[data-testid="product-row"]')].map((r) => r.dataset.key)) === `+js(string(b)), changeTimeout, nil)
}

// checkFilter checks that the page shows category ("" for all): the
// filter's button pressed (and no other), the view's filter, the URL's
// ?category= beside ?transport= and the fragment, and the transport
// links' category.
func (p *page) checkFilter(transport, category string) {
	p.t.Helper()
	var st struct {
		Pressed  []string        `json:"pressed"`
		Category string          `json:"category"`
		Where    json.RawMessage `json:"where"`
		Search   string          `json:"search"`
		Hash     string          `json:"hash"`
		Links    []string        `json:"links"`
	}
	p.eval("reading the filter", `({
  pressed: [...document.querySelectorAll('[data-testid="category-filter"] button[aria-pressed="true"]')].map((b) => b.value),
  category: viewsyncDemo.category,
  where: viewsyncDemo.view.where,
  search: location.search,
  hash: location.hash,
  links: [...document.querySelectorAll('[data-testid="transport-links"] a')].map((a) => a.search),
})`, &st)
	if !slices.Equal(st.Pressed, []string{category}) {
		p.t.Errorf("page %s: filter buttons pressed: %q, want only %q", p.name, st.Pressed, category)
	}
	wantWhere := "null"
	if category != "" {
		wantWhere = `{"category":"` + category + `"}`
	}
	if st.Category != category || string(st.Where) != wantWhere {
		p.t.Errorf("page %s: shows category %q, view filter %s; want %q, %s", p.name, st.Category, st.Where, category, wantWhere)
	}
	q, err := url.ParseQuery(strings.TrimPrefix(st.Search, "?"))
	if err != nil || q.Get("category") != category || q.Get("transport") != transport || st.Hash != "#note=kept" {
		p.t.Errorf("page %s: URL %s%s, want ?transport=%s, category %q and the fragment kept", p.name, st.Search, st.Hash, transport, category)
	}
	for _, l := range st.Links {
		if q, err := url.ParseQuery(strings.TrimPrefix(l, "?")); err != nil || q.Get("category") != category {
			p.t.Errorf("page %s: transport link %q does not keep category %q", p.name, l, category)
		}
	}
}

// checkReleased checks that the views the page let go since the reload
// are closed and their subscriptions dropped. from and frameFrom are the
// first request and WebSocket frame after the reload; last the first
// request after the switch to lighting. Over HTTP every request of those
// views — each one sent before last, and any other than the lighting
// view's — has ended; over WebSocket each got an unsubscribe, and the
// lighting view none.
func (p *page) checkReleased(transport string, from, last, frameFrom int) {
	p.t.Helper()
	var states []string
	p.eval("asking the released views", `Promise.all(window.__released.map((v) => Promise.race([
  v.waitFor(Number.MAX_SAFE_INTEGER).then(() => 'open', (e) => e.code),
  new Promise((r) => setTimeout(() => r('open'), 0)),
])))`, &states)
	if !slices.Equal(states, []string{"closed", "closed"}) {
		p.t.Errorf("page %s: the kitchen view and the view of all are %q, want both closed", p.name, states)
	}
	if transport == "ws" {
		p.eventually("an unsubscribe for each view let go", func() error { return p.unsubscribed(frameFrom) })
		return
	}
	p.eventually("the requests of the views let go end", func() error {
		n := 0
		var open []string
		for i, r := range p.sentSince(from) {
			where, ok := viewRequest(r.URL)
			if !ok || (from+i >= last && where == lightingWhere) {
				continue
			}
			n++
			if !r.Ended {
				open = append(open, r.URL)
			}
		}
		if n == 0 {
			return errors.New("no request of the kitchen view or the view of all was sent")
		}
		if len(open) > 0 {
			return fmt.Errorf("still open: %q", open)
		}
		return nil
	})
}

// eventually retries check, which reads what the test recorded of the
// page (its requests, its frames), until it returns nil, and fails the
// test with its last error when changeTimeout passes first.
func (p *page) eventually(what string, check func() error) {
	p.t.Helper()
	deadline := time.Now().Add(changeTimeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("page %s: %s: not within %v: %v", p.name, what, changeTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// viewRequest tells whether u is a request that follows a view of products
// (its snapshot, changes, event stream or NDJSON stream), and its filter
// ("" for the whole collection).
func viewRequest(u string) (where string, ok bool) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", false
	}
	switch pu.Path {
	case productsPath, productsPath + "/changes", productsPath + "/events", productsPath + "/stream":
		return pu.Query().Get("where"), true
	}
	return "", false
}

// unsubscribed checks the WebSocket frames the page sent from the from-th
// on: every subscription of products but the last, the lighting view's,
// was unsubscribed after it was made, and that one was not.
func (p *page) unsubscribed(from int) error {
	type msg struct {
		Type       string          `json:"type"`
		Collection string          `json:"collection"`
		Sub        string          `json:"sub"`
		Where      json.RawMessage `json:"where"`
	}
	var subs []msg
	gone := map[string]bool{}
	for _, f := range p.framesSince(from) {
		var m msg
		if json.Unmarshal([]byte(f), &m) != nil || m.Collection != "products" {
			continue
		}
		switch m.Type {
		case "subscribe":
			subs = append(subs, m)
			delete(gone, m.Sub)
		case "unsubscribe":
			gone[m.Sub] = true
		}
	}
	if len(subs) < 3 {
		return fmt.Errorf("%d subscriptions of products, want kitchen, all and lighting: %+v", len(subs), subs)
	}
	for i, s := range subs {
		last := i == len(subs)-1
		if last && string(s.Where) != lightingWhere {
			return fmt.Errorf("the last subscription is %+v, want the lighting view", s)
		}
		if gone[s.Sub] == last {
			return fmt.Errorf("subscription %q (where %s): unsubscribed %v, want %v", s.Sub, s.Where, gone[s.Sub], !last)
		}
	}
	return nil
}

// logEntry is a line of the page's log of sync references.
type logEntry struct {
	Kind string `json:"kind"` // added, updated, removed, catchup or reset
	Text string `json:"text"`
}

// checkLog checks that the page's log of sync references is the lighting
// view's: its snapshot of the lighting products first, then the chair
// moving in, the lamp leaving, the bulb's new price and the lantern;
// nothing of the kitchen, nothing from the views before.
func (p *page) checkLog() {
	p.t.Helper()
	var entries []logEntry
	p.eval("reading the sync log", `[...document.querySelectorAll('[data-testid="sync-entry"]')].reverse()
  .map((e) => ({ kind: e.className, text: e.textContent }))`, &entries)
	var texts []string
	for _, e := range entries {
		texts = append(texts, e.Kind+": "+e.Text)
	}
	all := strings.Join(texts, "\n")
	if len(entries) == 0 || entries[0].Kind != "reset" || !strings.Contains(entries[0].Text, "snapshot of 2 lighting products") {
		p.t.Errorf("page %s: the log does not start with the lighting view's snapshot:\n%s", p.name, all)
	}
	if n := strings.Count(all, "snapshot"); n != 1 {
		p.t.Errorf("page %s: %d snapshots in the log, want the lighting view's alone:\n%s", p.name, n, all)
	}
	for _, want := range []logEntry{
		{"added", "“Reading chair” now in Lighting"},
		{"removed", "“Desk lamp” no longer in Lighting"},
		{"updated", "“Bulb” updated"},
		{"added", "“Lantern” now in Lighting"},
	} {
		if !slices.ContainsFunc(entries, func(e logEntry) bool { return e.Kind == want.Kind && strings.Contains(e.Text, want.Text) }) {
			p.t.Errorf("page %s: no %s entry %q in the log:\n%s", p.name, want.Kind, want.Text, all)
		}
	}
	if strings.Contains(all, "Kettle") || strings.Contains(strings.ToLower(all), "kitchen") {
		p.t.Errorf("page %s: the log names the kitchen:\n%s", p.name, all)
	}
}
