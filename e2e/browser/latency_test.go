package browser

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// latencyRuns is how many saves TestCommitToRender times.
const latencyRuns = 20

// TestCommitToRender measures, and logs, the time from a click on "Save"
// in page A to the row's new value rendered in page B, both on WebSocket.
// Both tabs run in one browser, so their clocks (performance.timeOrigin +
// performance.now()) agree: A stamps the click in a capturing listener, B
// stamps the DOM patch in a MutationObserver. It asserts only that every
// save arrived, and in order.
func TestCommitToRender(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	const id = "p-latency"
	srv.put(id, product{Name: "Stopwatch", Description: "timed", Price: 1})

	a := b.open(t, "A", srv.url+"/")
	bb := b.open(t, "B", srv.url+"/")
	for _, p := range []*page{a, bb} {
		p.waitLive("ws")
		p.waitRow(id, "shown", `r && r.price === '1.00'`, changeTimeout)
	}
	a.eval("stamping clicks", `window.__clicks = [];
document.querySelector('[data-testid="product-list"]').addEventListener('click', (e) => {
  if (e.target.closest('[data-action="save"]')) window.__clicks.push(performance.timeOrigin + performance.now());
}, true);
true`, nil)
	// The binding writes the input, then the row's "ref N": the observer
	// sees the text change with the new price already in place. Other
	// mutations (the presence badge of A editing the row) are not renders.
	bb.eval("stamping renders", `window.__renders = [];
const shown = document.querySelector(`+js(rowSel(id))+` + ' [data-testid="product-price"]').value;
new MutationObserver(() => {
  const row = document.querySelector(`+js(rowSel(id))+`);
  if (!row) return;
  const price = row.querySelector('[data-testid="product-price"]').value;
  const last = window.__renders[window.__renders.length - 1];
  if ((last ? last.price : shown) !== price) window.__renders.push({ price, at: performance.timeOrigin + performance.now() });
}).observe(document.querySelector('[data-testid="product-list"]'), { subtree: true, childList: true, characterData: true, attributes: true });
true`, nil)

	var took []time.Duration
	for i := range latencyRuns {
		price := fmt.Sprintf("%d.%02d", 2+i, i+1)
		a.do("editing the price",
			typeInto(inRow(id, "product-price"), price),
			chromedp.Click(chromedp.CSS(inRow(id, "product-save"))),
		)
		var at float64
		bb.waitFor("render of price "+price, `window.__renders.find((r) => r.price === `+js(price)+`)?.at`, changeTimeout, &at)
		a.waitRow(id, "saved", `r && !r.dirty && !r.saving && r.price === `+js(price), changeTimeout)
		var clicks []float64
		a.eval("reading the clicks", `window.__clicks`, &clicks)
		if len(clicks) != i+1 {
			t.Fatalf("page A: %d save clicks stamped after %d saves", len(clicks), i+1)
		}
		took = append(took, time.Duration((at-clicks[i])*float64(time.Millisecond)))
	}
	var renders []struct {
		Price string `json:"price"`
	}
	bb.eval("reading the renders", `window.__renders`, &renders)
	if len(renders) != latencyRuns {
		t.Errorf("page B rendered %d price changes, want %d (one per save): %v", len(renders), latencyRuns, renders)
	}
	for _, d := range took {
		if d < 0 {
			t.Errorf("a render came before its click (%v): the tabs' clocks disagree", d)
		}
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	median := (sorted[latencyRuns/2-1] + sorted[latencyRuns/2]) / 2
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	t.Logf("commit→render median over %d: %s ms (min %s, max %s)", latencyRuns, ms(median), ms(sorted[0]), ms(sorted[len(sorted)-1]))
}
