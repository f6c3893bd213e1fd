package browser

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// toastJS is a JavaScript expression: the undo toast's text while it
// shows, else false.
const toastJS = `((t) => !t.hidden && t.textContent.replace(/\s+/g, ' ').trim())(document.querySelector('[data-testid="undo-toast"]'))`

// TestUndoDelete: page A removes a product; a toast names it and offers
// to undo; Undo puts it back with its value, and page B, which saw it go,
// shows it again. Then A removes another, which is created again through
// the API before A's undo: the undo does not overwrite it, and A shows an
// error.
func TestUndoDelete(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	lamp := product{Name: "Desk lamp", Description: "brass", Price: 30, Category: "lighting"}
	srv.put("p-1-lamp", lamp)
	srv.put("p-2-chair", product{Name: "Old chair", Description: "wobbly", Price: 15, Category: "furniture"})

	a := b.open(t, "A", srv.url+"/")
	bb := b.open(t, "B", srv.url+"/")
	for _, p := range []*page{a, bb} {
		p.waitLive("")
		p.waitRow("p-1-lamp", "shown", `r && r.name === 'Desk lamp'`, changeTimeout)
		p.waitRow("p-2-chair", "shown", `r && r.name === 'Old chair'`, changeTimeout)
	}
	// B notes each change to the lamp, in order (the server's: not A's
	// writes shown pending, which B, a tab of the same origin, sees too).
	bb.eval("watching the lamp", `(() => {
  const seen = window.__lamp = [];
  viewsyncDemo.view.subscribe((ev) => {
    if (ev.type === 'pending') return;
    if (ev.removed.includes('p-1-lamp')) seen.push('removed');
    if (ev.added.includes('p-1-lamp')) seen.push('added');
  });
  return true;
})()`, nil)

	a.do("removing the lamp", chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-delete"))))
	var text string
	a.waitFor("the undo toast", toastJS, actionTimeout, &text)
	if want := "Deleted “Desk lamp” · Undo"; text != want {
		t.Errorf("page A: toast %q, want %q", text, want)
	}
	a.do("undoing", chromedp.Click(chromedp.CSS(tid("undo-delete"))))
	row := bb.waitRow("p-1-lamp", "back after the undo", `r && r.name === 'Desk lamp'`, changeTimeout)
	if row.Description != "brass" || row.Price != "30.00" || row.Category != "lighting" || row.Dirty || row.InConflict {
		t.Errorf("page B: the lamp came back as %+v, want brass, 30.00, lighting, clean", row)
	}
	var seen []string
	bb.waitFor("the lamp going, then coming back", `window.__lamp.length >= 2 && window.__lamp`, changeTimeout, &seen)
	if strings.Join(seen, " ") != "removed added" {
		t.Errorf("page B saw the lamp %q, want removed, then added", seen)
	}
	a.waitRow("p-1-lamp", "back in A", `r && r.name === 'Desk lamp' && r.price === '30.00'`, changeTimeout)
	a.waitFor("the toast gone", `!(`+toastJS+`)`, actionTimeout, nil)
	if got := srv.get("p-1-lamp").Value; got != lamp {
		t.Errorf("server: the lamp is %+v after the undo, want %+v", got, lamp)
	}

	// An undo that would overwrite a product created again meanwhile. The
	// focus on the toast's button keeps it showing while the test works.
	a.do("removing the chair", chromedp.Click(chromedp.CSS(inRow("p-2-chair", "product-delete"))))
	a.waitFor("the undo toast for the chair", toastJS+` === 'Deleted “Old chair” · Undo'`, actionTimeout, nil)
	a.do("focusing undo", chromedp.Focus(chromedp.CSS(tid("undo-delete"))))
	a.waitRow("p-2-chair", "removed in A", `!r`, changeTimeout)
	again := product{Name: "New chair", Description: "sturdy", Price: 99, Category: "furniture"}
	srv.put("p-2-chair", again)
	a.waitRow("p-2-chair", "created again", `r && r.name === 'New chair'`, changeTimeout)
	a.do("undoing over it", chromedp.Click(chromedp.CSS(tid("undo-delete"))))
	var banner string
	a.waitFor("the error banner", `((e) => !e.hidden && e.textContent)(document.querySelector('[data-testid="error-banner"]'))`, actionTimeout, &banner)
	if !strings.Contains(banner, "Old chair") || !strings.Contains(banner, "not restored") {
		t.Errorf("page A: error %q, want it to say “Old chair” was not restored", banner)
	}
	a.waitFor("the toast gone after the failed undo", `!(`+toastJS+`)`, actionTimeout, nil)
	if got := srv.get("p-2-chair").Value; got != again {
		t.Errorf("server: the chair is %+v after the refused undo, want %+v", got, again)
	}
	bb.waitRow("p-2-chair", "the new chair in B", `r && r.name === 'New chair' && r.price === '99.00'`, changeTimeout)
}
