package browser

import (
	"context"
	"fmt"
	"strings"
	"testing"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestNDJSONWithToken: on a server that requires tokens, the demo opened
// with one (/#token=…) follows its collection over the NDJSON stream —
// forced with ?transport=ndjson, and chosen by 'auto' in place of SSE when
// WebSocket is blocked — and shows the changes made elsewhere without a
// reload. Every stream request carries the token in its Authorization
// header and none in its URL.
func TestNDJSONWithToken(t *testing.T) {
	const secret = "e2e-browser-ndjson-secret-0123456789abcdef"
	srv := startServer(t, t.TempDir(), "", "--auth-secret", secret)
	tok := mintToken(t, secret, "--sub", "e2e", "--read", "products", "--write", "products", "--call", "discount")
	srv.token = tok
	srv.put("p-1-lamp", product{Name: "Desk lamp", Description: "brass", Price: 30})

	b := newBrowser(t)
	for i, tc := range []struct {
		name, query string
		before      []func(context.Context) error
	}{
		{"forced", "?transport=ndjson", nil},
		{"auto without WebSocket", "", []func(context.Context) error{blockWebSockets}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := b.open(t, "A", srv.url+"/"+tc.query+"#token="+tok, tc.before...)
			p.waitLive("ndjson")
			p.waitRow("p-1-lamp", "shown", `r && r.name === 'Desk lamp'`, changeTimeout)

			// Changes made through the API appear live.
			name := "Kettle " + tc.name
			id := "p-ndjson-" + string(rune('a'+i))
			srv.put(id, product{Name: name, Description: "steel", Price: 12.5})
			p.waitRow(id, "added live", `r && r.name === `+js(name)+` && r.price === '12.50'`, changeTimeout)
			v := srv.patch("p-1-lamp", map[string]any{"price": 31 + i})
			p.waitRow("p-1-lamp", "updated live", `r && r.ref === `+js(fmt.Sprintf("ref %d", v)), changeTimeout)
			if state, got, _ := p.badge(); state != "live" || got != "ndjson" {
				t.Errorf("badge: %s over %s, want live over ndjson", state, got)
			}

			streams := p.sent("/v1/collections/products/stream")
			if len(streams) == 0 {
				t.Fatal("the page sent no request to /v1/collections/products/stream")
			}
			for _, r := range streams {
				if r.Authorization != "Bearer "+tok {
					t.Errorf("GET %s: Authorization %q, want the page's token", r.URL, r.Authorization)
				}
				if strings.Contains(r.URL, "token=") || strings.Contains(r.URL, tok) {
					t.Errorf("GET %s: the token is in the URL", r.URL)
				}
			}
			if ev := p.sent("/events"); len(ev) > 0 {
				t.Errorf("the page opened SSE streams too: %v", ev)
			}
		})
	}
}

// blockWebSockets makes the tab a browser without WebSocket, as behind a
// proxy that refuses upgrades: the pages it loads find no WebSocket.
func blockWebSockets(ctx context.Context) error {
	_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument,
		cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: "delete window.WebSocket;"})
	return err
}
