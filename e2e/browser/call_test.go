package browser

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCallReadYourWrites: "Apply 10% discount to all" calls the server's
// "discount"; the moment the page shows the call's result, the grid
// already shows the discounted prices. The check runs inside the page, in
// the microtask after the result appears, so nothing can update the grid
// in between. Over every transport: over poll the commit reaches the page
// up to 2s after the call returns, so an early resolve would show.
func TestCallReadYourWrites(t *testing.T) {
	b := newBrowser(t)
	seed := map[string]float64{"p-1": 10, "p-2": 25.5, "p-3": 99.99}
	want := []string{"9.00", "22.95", "89.99"} // by id; the server rounds to cents
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			srv := startServer(t, t.TempDir(), "")
			for id, price := range seed {
				srv.put(id, product{Name: "Product " + id, Price: price})
			}
			p := b.open(t, "A", srv.url+"/?transport="+tr)
			p.waitLive(tr)
			p.waitFor("three rows", `document.querySelectorAll('[data-testid="product-row"]').length === 3`, changeTimeout, nil)

			// Watch the result element; read the grid when data-updated appears.
			p.eval("watching the result", `window.__discount = new Promise((resolve) => {
  const out = document.querySelector('[data-testid="discount-result"]');
  const seen = new MutationObserver(() => {
    if (out.dataset.updated === undefined) return;
    seen.disconnect();
    resolve({
      updated: Number(out.dataset.updated),
      text: out.textContent,
      prices: [...document.querySelectorAll('[data-testid="product-row"]')]
        .map((r) => [r.dataset.key, r.querySelector('[data-testid="product-price"]').value]),
    });
  });
  seen.observe(out, { attributes: true, attributeFilter: ['data-updated'] });
}), true`, nil)
			p.do("clicking discount", chromedp.Click(chromedp.CSS(tid("discount-button"))))
			var got struct {
				Updated int         `json:"updated"`
				Text    string      `json:"text"`
				Prices  [][2]string `json:"prices"`
			}
			p.eval("waiting for the discount's result", `window.__discount`, &got)
			t.Logf("%s: result %q", tr, got.Text)
			if got.Updated != len(seed) {
				t.Errorf("result says %d updated, want %d", got.Updated, len(seed))
			}
			var shown []string
			for _, kv := range got.Prices {
				shown = append(shown, kv[1])
			}
			if !slices.Equal(shown, want) {
				t.Errorf("when the result showed, the grid's prices were %v, want %v (the call resolved before its write was on screen)", got.Prices, want)
			}
			recs := srv.snapshot()
			var stored []string
			for _, r := range recs {
				stored = append(stored, fmt.Sprintf("%.2f", r.Value.Price))
			}
			if !slices.Equal(stored, want) {
				t.Errorf("server holds prices %v, want %v", stored, want)
			}
		})
	}
}
