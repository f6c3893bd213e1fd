package browser

import (
	"fmt"
	"testing"
)

// inViewJS is a JavaScript expression: whether the element of the CSS
// selector sel is wholly within the viewport (give or take the fraction of
// a pixel that layout rounds to).
func inViewJS(sel string) string {
	return `((e) => { const r = e.getBoundingClientRect(); return r.height > 0 && r.top > -1 && r.bottom < innerHeight + 1 && r.left > -1 && r.right < innerWidth + 1; })(document.querySelector(` + js(sel) + `))`
}

// TestConflictScrolledIntoViewOnPhone: on a phone, a user types into the
// last product's name, then scrolls to the top of the page without
// saving; someone else renames that product. The row, in conflict, is
// scrolled into view, with its Keep mine and Take theirs buttons.
func TestConflictScrolledIntoViewOnPhone(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	const n = 12
	for i := range n {
		srv.put(fmt.Sprintf("p-%02d", i), product{Name: fmt.Sprintf("Product %d", i), Description: "one of many", Price: float64(10 + i), Category: "kitchen"})
	}
	id := fmt.Sprintf("p-%02d", n-1)

	p := b.openOn(t, "phone", srv.url+"/", phone)
	p.waitLive("")
	p.waitRow(id, "shown", `r`, changeTimeout)
	var width int
	p.eval("reading the viewport", `innerWidth`, &width)
	if width != int(phone.width) {
		t.Fatalf("page phone: innerWidth %d, want %d", width, phone.width)
	}

	p.do("typing into the last name", typeInto(inRow(id, "product-name"), "mine"))
	p.waitRow(id, "dirty", `r && r.dirty && r.focused === 'name'`, actionTimeout)
	var inView bool
	p.eval("scrolling to the top", `window.scrollTo(0, 0), `+inViewJS(rowSel(id)), &inView)
	if inView {
		t.Fatal("page phone: the last row is still in view at the top of the page: the test shows nothing")
	}

	srv.patch(id, map[string]any{"name": "theirs"})
	row := p.waitRow(id, "in conflict", `r && r.inConflict && r.conflictShown`, changeTimeout)
	if row.Name != "mine" || row.Focused != "name" {
		t.Errorf("page phone: the row shows %q with focus on %q, want the user's text and focus kept", row.Name, row.Focused)
	}
	p.waitFor("the row in view", inViewJS(rowSel(id)), actionTimeout, nil)
	for _, b := range []string{"product-keep-mine", "product-take-theirs"} {
		var ok bool
		p.eval("finding "+b, inViewJS(inRow(id, b)), &ok)
		if !ok {
			t.Errorf("page phone: %s is not in view", b)
		}
	}
}
