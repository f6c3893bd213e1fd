package browser

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// presenceTTL is the server's presence TTL in TestPresence: a tab gone
// must have left the others' pages within it.
const presenceTTL = 3 * time.Second

// editingJS is the badge a page shows on row id: the names bindTable put
// in data-editing and the text the demo's style shows, "" for none.
func editingJS(id string) string {
	return fmt.Sprintf(`((r) => r ? { by: r.dataset.editing || '', badge: getComputedStyle(r, '::after').content } : null)(document.querySelector(%s))`, js(rowSel(id)))
}

// TestPresence: two pages of the demo, Ana's and Ben's, over each push
// transport. A control of a row focused in one page shows "Ana is
// editing" on that row in the other, and the badge goes when the focus
// leaves the rows; the editor's own typing is never overwritten while the
// other saves the row; a tab closed leaves the other's page within the
// TTL.
func TestPresence(t *testing.T) {
	b := newBrowser(t)
	for _, tr := range []string{"ws", "sse", "ndjson"} {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, t.TempDir(), "", "--presence-ttl", presenceTTL.String())
			srv.putLampAndChair()
			ana, ben := anaEditsTheLamp(t, b, srv.url, srv.url, tr)

			// Ben saves the lamp's price meanwhile: Ana sees him there, and
			// her name field keeps what she typed.
			ben.do("editing the lamp's price", typeInto(inRow("p-1-lamp", "product-price"), "31"),
				chromedp.Click(chromedp.CSS(inRow("p-1-lamp", "product-save"))))
			ana.waitFor("Ben's badge on the lamp", editingJS("p-1-lamp")+`?.by === 'Ben'`, changeTimeout, nil)
			ana.waitRow("p-1-lamp", "Ben's price, her own name", `r && r.price === '31.00' && r.name === "Desk lamp (Ana's)" && r.dirty`, changeTimeout)

			// Focus leaves the rows: the badges go.
			leaveRows(ana, ben)

			// Ana edits the chair, then her tab closes: Ben's badge goes
			// within the TTL.
			gone := anaLeavesFromTheChair(t, ana, ben, presenceTTL+changeTimeout)
			t.Logf("%s: Ana's badge went %v after her tab closed", tr, gone)
		})
	}
}

// anaEditsTheLamp opens Ana's page of the demo at anaURL and Ben's at
// benURL over transport tr, waits until both are live and show the lamp,
// then has Ana type in the lamp's name: Ben sees "Ana is editing" on that
// row only, and Ana does not see herself.
func anaEditsTheLamp(t *testing.T, b *browser, anaURL, benURL, tr string) (ana, ben *page) {
	t.Helper()
	ana = b.open(t, "Ana", anaURL+"/?name=Ana&transport="+tr)
	ben = b.open(t, "Ben", benURL+"/?name=Ben&transport="+tr)
	for _, p := range []*page{ana, ben} {
		p.waitLive(tr)
		p.waitRow("p-1-lamp", "shown", `r && r.name === 'Desk lamp'`, changeTimeout)
	}
	ana.do("typing in the lamp's name", typeInto(inRow("p-1-lamp", "product-name"), "Desk lamp (Ana's)"))
	ben.waitFor("Ana's badge on the lamp", editingJS("p-1-lamp")+`?.by === 'Ana'`, changeTimeout, nil)
	var badge struct{ By, Badge string }
	ben.eval("reading the badge", editingJS("p-1-lamp"), &badge)
	if badge.Badge != `"Ana is editing"` {
		t.Errorf("page Ben: the lamp's badge reads %s, want \"Ana is editing\"", badge.Badge)
	}
	ben.eval("reading the chair's badge", editingJS("p-2-chair"), &badge)
	if badge.By != "" {
		t.Errorf("page Ben: the chair shows %q editing", badge.By)
	}
	ana.eval("reading her own badge", editingJS("p-1-lamp"), &badge)
	if badge.By != "" {
		t.Errorf("page Ana: her own row shows %q editing", badge.By)
	}
	return ana, ben
}

// leaveRows moves both pages' focus out of the rows: each one's badge
// goes from the other's page.
func leaveRows(ana, ben *page) {
	for _, p := range []*page{ana, ben} {
		p.do("leaving the rows", chromedp.Focus(chromedp.CSS(tid("add-name"))))
	}
	ben.waitFor("Ana's badge gone", editingJS("p-1-lamp")+`?.by === ''`, changeTimeout, nil)
	ana.waitFor("Ben's badge gone", editingJS("p-1-lamp")+`?.by === '' && `+editingJS("p-2-chair")+`?.by === ''`, changeTimeout, nil)
}

// anaLeavesFromTheChair has Ana focus the chair until Ben sees her there,
// then closes her tab and waits up to within for her badge to go from
// Ben's page. It returns how long that took.
func anaLeavesFromTheChair(t *testing.T, ana, ben *page, within time.Duration) time.Duration {
	t.Helper()
	ana.do("focusing the chair", chromedp.Focus(chromedp.CSS(inRow("p-2-chair", "product-description"))))
	ben.waitFor("Ana's badge on the chair", editingJS("p-2-chair")+`?.by === 'Ana'`, changeTimeout, nil)
	closed := time.Now()
	if err := chromedp.Cancel(ana.ctx); err != nil {
		t.Fatalf("closing Ana's tab: %v", err)
	}
	ben.waitFor("Ana gone", editingJS("p-2-chair")+`?.by === ''`, within, nil)
	return time.Since(closed).Round(time.Millisecond)
}
