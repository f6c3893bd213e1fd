package browser

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// transports are the client's transports, as the demo's ?transport= names them.
var transports = []string{"ws", "sse", "longpoll", "poll"}

// labels are the names the demo's badge gives the transports.
var labels = map[string]string{"ws": "WebSocket", "sse": "SSE", "longpoll": "long-poll", "poll": "poll"}

// TestTwoPagesSync: two tabs on the demo, forced onto one transport each
// run. What page A adds, edits inline and removes appears in page B
// without a reload. Over WebSocket, B's acks feed the server's
// commit-to-visible metric.
func TestTwoPagesSync(t *testing.T) {
	b := newBrowser(t)
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			start := time.Now()
			srv := startServer(t, t.TempDir(), "")
			srv.putLampAndChair()

			url := srv.url + "/?transport=" + tr
			a := b.open(t, "A", url)
			bb := b.open(t, "B", url)
			for _, p := range []*page{a, bb} {
				p.waitLive(tr)
				if state, got, text := p.badge(); state != "live" || got != tr || text != labels[tr]+" · live" {
					t.Fatalf("page %s: badge %q (state %s, transport %s), want %q", p.name, text, state, got, labels[tr]+" · live")
				}
				p.waitRow("p-2-chair", "shown", `r && r.name === 'Old chair'`, changeTimeout)
			}

			// Add in A: the row appears in B.
			name := "Kettle over " + tr
			a.do("adding a product",
				typeInto(tid("add-name"), name),
				typeInto(tid("add-description"), "stainless"),
				typeInto(tid("add-price"), "12.5"),
				chromedp.Click(chromedp.CSS(tid("add-submit"))),
			)
			id := bb.findRowByName(name, changeTimeout)
			row := bb.waitRow(id, "added with its fields", `r && r.description === 'stainless' && r.price === '12.50'`, changeTimeout)
			if row.Dirty || row.InConflict || row.Conflict != "" {
				t.Errorf("page B: new row %s is dirty or in conflict: %+v", id, row)
			}

			// Edit its price inline in A and save: B shows the new price.
			a.waitRow(id, "shown in A", `r`, changeTimeout)
			a.do("editing the price",
				typeInto(inRow(id, "product-price"), "19.99"),
				chromedp.Click(chromedp.CSS(inRow(id, "product-save"))),
			)
			bb.waitRow(id, "price 19.99", `r && r.price === '19.99'`, changeTimeout)
			a.waitRow(id, "saved in A", `r && !r.dirty && !r.saving && r.price === '19.99'`, changeTimeout)
			// The demo's outbox sends a saved row a moment after it is saved.
			srv.eventually("the save on the server", changeTimeout, func() error {
				if got := srv.get(id).Value; got.Price != 19.99 || got.Name != name {
					return fmt.Errorf("%s is %+v after the save, want price 19.99 and name %q", id, got, name)
				}
				return nil
			})

			// Remove another in A: it disappears from B.
			a.do("removing a product", chromedp.Click(chromedp.CSS(inRow("p-2-chair", "product-delete"))))
			bb.waitRow("p-2-chair", "removed", `!r`, changeTimeout)
			a.waitRow("p-2-chair", "removed in A", `!r`, changeTimeout)

			// B's log of sync references names each change. (B, a tab of
			// the same origin, may show A's writes pending before their
			// commits arrive: wait for the commits.)
			cond := `((m) => m.added && m.updated && m.removed && m)([...document.querySelectorAll('[data-testid="sync-entry"]')]
  .reduce((m, e) => { m[e.className] = (m[e.className] || 0) + 1; return m; }, {}))`
			bb.waitFor("a sync log naming an add, an update and a removal", cond, changeTimeout, nil)

			if tr == "ws" {
				// Acks go at most every 250ms: wait for the server to count one.
				const metric = `viewsync_commit_visible_seconds_count{collection="products"}`
				srv.eventually(metric+" > 0", changeTimeout, func() error {
					v, err := srv.metric(metric)
					if err != nil {
						return err
					}
					if v <= 0 {
						return fmt.Errorf("%s = %v", metric, v)
					}
					t.Logf("%s = %v", metric, v)
					return nil
				})
			}
			t.Logf("%s: add, edit and remove reached page B in %v (with setup)", tr, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestTypingIsNotClobbered: page B types into a product's name without
// saving while page A saves another name for it. B keeps its text and shows
// the conflict; "keep mine" writes B's text over A's; after another remote
// change, "take theirs" drops B's text for the remote value.
func TestTypingIsNotClobbered(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	const id = "p-typing"
	srv.put(id, product{Name: "Original", Description: "as seeded", Price: 5})

	a := b.open(t, "A", srv.url+"/")
	bb := b.open(t, "B", srv.url+"/")
	for _, p := range []*page{a, bb} {
		p.waitLive("")
		p.waitRow(id, "shown", `r && r.name === 'Original'`, changeTimeout)
	}

	// B starts typing and does not save.
	bb.do("typing into the name", typeInto(inRow(id, "product-name"), "mine"))
	row := bb.waitRow(id, "dirty with B's text", `r && r.dirty && r.name === 'mine'`, actionTimeout)
	if row.Focused != "name" {
		t.Fatalf("page B: focus is on %q, want the name input", row.Focused)
	}

	// A saves another name.
	a.do("saving another name",
		typeInto(inRow(id, "product-name"), "theirs"),
		chromedp.Click(chromedp.CSS(inRow(id, "product-save"))),
	)
	srv.eventually("server has A's name", changeTimeout, func() error {
		if got := srv.get(id).Value.Name; got != "theirs" {
			return fmt.Errorf("name %q", got)
		}
		return nil
	})

	// B: its text stays, the conflict shows, naming the remote value.
	row = bb.waitRow(id, "conflict on name", `r && r.inConflict && r.conflict === 'name' && r.conflictShown`, changeTimeout)
	if row.Name != "mine" {
		t.Errorf("page B: name input holds %q after the remote change, want B's %q", row.Name, "mine")
	}
	if row.Focused != "name" {
		t.Errorf("page B: focus moved to %q during the remote change", row.Focused)
	}
	if want := `name is now “theirs”`; !strings.Contains(row.ConflictText, want) {
		t.Errorf("page B: conflict text %q does not say %q", row.ConflictText, want)
	}
	bb.do("finding keep mine", chromedp.WaitVisible(chromedp.CSS(inRow(id, "product-keep-mine"))))

	// Keep mine: the server now holds B's text, and A shows it.
	bb.do("keeping mine", chromedp.Click(chromedp.CSS(inRow(id, "product-keep-mine"))))
	srv.eventually("server has B's name after keep mine", changeTimeout, func() error {
		if got := srv.get(id).Value.Name; got != "mine" {
			return fmt.Errorf("name %q", got)
		}
		return nil
	})
	bb.waitRow(id, "resolved", `r && !r.dirty && !r.inConflict && !r.conflict && !r.conflictShown && r.name === 'mine'`, changeTimeout)
	a.waitRow(id, "B's name in A", `r && r.name === 'mine' && !r.conflict`, changeTimeout)

	// Again, and take theirs: B's input shows the remote value.
	bb.do("typing again", typeInto(inRow(id, "product-name"), "mine again"))
	bb.waitRow(id, "dirty again", `r && r.dirty && r.name === 'mine again'`, actionTimeout)
	srv.patch(id, map[string]any{"name": "remote two"})
	row = bb.waitRow(id, "second conflict", `r && r.inConflict && r.conflict === 'name' && r.conflictShown`, changeTimeout)
	if row.Name != "mine again" {
		t.Errorf("page B: name input holds %q after the second remote change, want %q", row.Name, "mine again")
	}
	bb.do("taking theirs", chromedp.Click(chromedp.CSS(inRow(id, "product-take-theirs"))))
	bb.waitRow(id, "remote value shown", `r && r.name === 'remote two' && !r.dirty && !r.inConflict && !r.conflict && !r.conflictShown`, changeTimeout)
	if got := srv.get(id).Value; got.Name != "remote two" || got.Price != 5 {
		t.Errorf("server: %+v after take theirs, want the remote write untouched", got)
	}
}

// TestInlinePriceIsValidated: an inline edit obeys the add form's rules —
// a negative price is refused with an error and nothing is written; a price
// with more than cents is saved rounded to cents.
func TestInlinePriceIsValidated(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	const id = "p-price"
	v0 := srv.put(id, product{Name: "Lamp", Description: "d", Price: 5})

	p := b.open(t, "A", srv.url+"/")
	p.waitLive("")
	p.waitRow(id, "shown", `r && r.name === 'Lamp'`, changeTimeout)

	p.do("saving a negative price",
		typeInto(inRow(id, "product-price"), "-5"),
		chromedp.Click(chromedp.CSS(inRow(id, "product-save"))),
	)
	var banner string
	p.waitFor("the error banner", `(() => { const e = document.querySelector('[data-testid="error-banner"]'); return e && !e.hidden && e.textContent; })()`, actionTimeout, &banner)
	if !strings.Contains(banner, "price") {
		t.Errorf("error banner says %q, want it to name the price", banner)
	}
	if got := srv.get(id); got.Version != v0 || got.Value.Price != 5 {
		t.Fatalf("server: %+v at version %d after a refused save, want price 5 at version %d", got.Value, got.Version, v0)
	}

	p.do("saving a price with tenths of cents",
		typeInto(inRow(id, "product-price"), "12.345"),
		chromedp.Click(chromedp.CSS(inRow(id, "product-save"))),
	)
	srv.eventually("server has the rounded price", changeTimeout, func() error {
		if got := srv.get(id).Value.Price; got != 12.35 && got != 12.34 {
			return fmt.Errorf("price %v", got)
		}
		return nil
	})
}
