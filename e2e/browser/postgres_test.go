package browser

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/viewsync/viewsync/internal/pgtest"
)

// savedJS saves the row of product id through the demo's binding, with
// the focus on its Save button, as a click on it does, and describes, in
// the same microtask as the save's end, what the page then shows: the
// version the save resolved, the view's version, the record and the row.
func savedJS(id string) string {
	return `(async () => {
  const d = globalThis.viewsyncDemo;
  const row = document.querySelector(` + js(rowSel(id)) + `);
  row.querySelector('[data-testid="product-save"]').focus();
  const v = await d.binding.save(` + js(id) + `);
  const rec = d.view.record(` + js(id) + `);
  return {
    saved: v ?? 0, viewVersion: d.view.version, recVersion: rec ? rec.version : 0,
    price: rec ? rec.value.price : null, name: rec ? rec.value.name : null,
    shown: row.querySelector('[data-testid="product-price"]').value,
    ref: row.querySelector('[data-testid="product-version"]').textContent,
    dirty: row.classList.contains('vs-dirty'),
  };
})()`
}

// saved is what savedJS returns.
type saved struct {
	Saved       uint64  `json:"saved"`
	ViewVersion uint64  `json:"viewVersion"`
	RecVersion  uint64  `json:"recVersion"`
	Price       float64 `json:"price"`
	Name        string  `json:"name"`
	Shown       string  `json:"shown"`
	Ref         string  `json:"ref"`
	Dirty       bool    `json:"dirty"`
}

// check fails unless the page showed the save, made at price and name, at
// once: the view at or past the version the save resolved, the record
// written by it, the row showing it, clean.
func (s saved) check(t *testing.T, page string, price float64, name string) {
	t.Helper()
	if s.Saved == 0 || s.ViewVersion < s.Saved || s.RecVersion == 0 || s.RecVersion > s.Saved ||
		s.Price != price || s.Name != name || s.Shown != fmt.Sprintf("%.2f", price) ||
		s.Ref != fmt.Sprintf("ref %d", s.RecVersion) || s.Dirty {
		t.Errorf("page %s: when its save resolved the page showed %+v; want the view at or past the save's version, the record at price %.2f and name %q, the row showing it with its version, clean", page, s, price, name)
	}
}

// TestPostgresDemoReadYourWrites: the demo on PostgreSQL (serve --demo
// --pg-url). The collection is fed from the table, so the page writes
// through the demo's calls, which write to the table and answer once the
// source has applied the write. An edit saved in page A (over poll,
// where a commit reaches the page up to 2s after it is made, so an early
// answer would show) is on A's screen, with the version that includes
// it, the moment its save resolves, and page B (over WebSocket) shows it;
// B's edit, over the WebSocket call, likewise. A conflict still shows in
// the page editing the product, and "keep mine" writes through the call.
func TestPostgresDemoReadYourWrites(t *testing.T) {
	_, _, url := pgtest.NewDB(t)
	db := pgtest.Connect(t, url)
	srv := startServer(t, t.TempDir(), "", "--demo", "--demo-seed=true", "--pg-url", url,
		"--pg-slot", "vs_browser", "--pg-publication", "vs_browser")
	srv.eventually("/readyz 200", liveTimeout, func() error {
		res, err := srv.client.Get(srv.url + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", res.StatusCode)
		}
		return nil
	})
	const id = "p-01-desk-lamp"

	b := newBrowser(t)
	a := b.open(t, "A", srv.url+"/?transport=poll")
	bb := b.open(t, "B", srv.url+"/?transport=ws")
	for _, p := range []*page{a, bb} {
		p.waitLive(map[*page]string{a: "poll", bb: "ws"}[p])
		p.waitRow(id, "the seeded desk lamp", `r && r.name === 'Desk lamp' && r.price === '49.00'`, changeTimeout)
		p.waitFor("the note saying where products are kept", `((n) => !n.hidden && n.textContent)(document.querySelector('[data-testid="source-note"]'))`, changeTimeout, nil)
	}
	var note string
	a.eval("reading the note", `document.querySelector('[data-testid="source-note"]').textContent`, &note)
	if note != "Kept in PostgreSQL table public.products: edits go through server calls." {
		t.Errorf("page A: note %q", note)
	}

	// A edits the price over poll: shown with its version the moment the
	// save resolves.
	a.do("typing a price", typeInto(inRow(id, "product-price"), "19.99"))
	var got saved
	start := time.Now()
	a.eval("saving the row", savedJS(id), &got)
	got.check(t, "A", 19.99, "Desk lamp")
	t.Logf("poll: save → on screen with its version: %s", time.Since(start).Round(time.Millisecond))
	if calls, puts := len(a.sent("/v1/calls/products%2Eput")), len(a.sent("/v1/collections/products/records/")); calls != 1 || puts != 0 {
		t.Errorf("page A sent %d products.put calls and %d record writes; want the save as one call", calls, puts)
	}
	bb.waitRow(id, "A's price", `r && r.price === '19.99' && !r.dirty`, changeTimeout)
	var price string
	if err := db.QueryRow(context.Background(), "SELECT price::text FROM products WHERE id = $1", id).Scan(&price); err != nil || price != "19.99" {
		t.Errorf("the table has price %q (%v), want 19.99", price, err)
	}

	// B edits the name over WebSocket: its call goes on the socket.
	frames := len(bb.framesSince(0))
	bb.do("typing a name", typeInto(inRow(id, "product-name"), "Brass desk lamp"))
	start = time.Now()
	bb.eval("saving the row", savedJS(id), &got)
	got.check(t, "B", 19.99, "Brass desk lamp")
	t.Logf("ws: save → on screen with its version: %s", time.Since(start).Round(time.Millisecond))
	if sent := strings.Join(bb.framesSince(frames), "\n"); !strings.Contains(sent, `"name":"products.put"`) {
		t.Errorf("page B's save sent no products.put call on its WebSocket: %s", sent)
	}
	a.waitRow(id, "B's name", `r && r.name === 'Brass desk lamp'`, changeTimeout)

	// A conflict: B types a name and does not save; A saves another. B
	// keeps its text and shows the conflict; "keep mine" writes it,
	// through the call, over A's.
	bb.do("typing a name without saving", typeInto(inRow(id, "product-name"), "Mine"))
	a.do("typing another name", typeInto(inRow(id, "product-name"), "Theirs"))
	a.eval("saving the row", savedJS(id), &got)
	got.check(t, "A", 19.99, "Theirs")
	row := bb.waitRow(id, "in conflict", `r && r.conflict === 'name'`, changeTimeout)
	if row.Name != "Mine" || !row.ConflictShown {
		t.Errorf("page B: conflict row %+v; want its text kept and the conflict shown", row)
	}
	bb.do("keeping mine", chromedp.Click(chromedp.CSS(inRow(id, "product-keep-mine"))))
	bb.waitRow(id, "kept", `r && r.name === 'Mine' && !r.dirty && !r.inConflict`, changeTimeout)
	a.waitRow(id, "B's kept name", `r && r.name === 'Mine'`, changeTimeout)
	var name string
	if err := db.QueryRow(context.Background(), "SELECT name FROM products WHERE id = $1", id).Scan(&name); err != nil || name != "Mine" {
		t.Errorf("the table has name %q (%v), want Mine", name, err)
	}
}
