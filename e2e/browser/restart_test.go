package browser

import (
	"testing"
	"time"
)

// TestServerRestartResume: two live pages (WebSocket and SSE) see the
// server stop, show it, and when it is back on the same address and store,
// return to live and show what was written meanwhile — without reloading.
func TestServerRestartResume(t *testing.T) {
	b := newBrowser(t)
	data := t.TempDir()
	addr := freeAddr(t)
	srv := startServer(t, data, addr)
	srv.put("p-before", product{Name: "Before", Description: "written before the restart", Price: 10})
	srv.put("p-gone", product{Name: "Gone soon", Price: 1})

	pages := []struct {
		p         *page
		transport string
	}{
		{b.open(t, "A", srv.url+"/"), "ws"}, // auto settles on WebSocket
		{b.open(t, "B", srv.url+"/?transport=sse"), "sse"},
	}
	for _, x := range pages {
		x.p.waitLive(x.transport)
		x.p.waitRow("p-gone", "shown", `r && r.name === 'Gone soon'`, changeTimeout)
		x.p.eval("marking the document", `window.__noReload = 1`, nil)
	}

	took, err := srv.stop()
	if err != nil {
		t.Fatalf("stopping the server with live pages: %v (after %v)", err, took)
	}
	t.Logf("graceful stop with two live pages took %v", took.Round(time.Millisecond))
	for _, x := range pages {
		x.p.waitFor("badge not live while the server is down",
			`['offline', 'connecting'].includes(document.querySelector('[data-testid="status-badge"]').dataset.state)`,
			changeTimeout, nil)
	}

	srv = startServer(t, data, addr)
	srv.put("p-after", product{Name: "After", Description: "written after the restart", Price: 20})
	srv.patch("p-before", map[string]any{"name": "Before, renamed"})
	srv.do("DELETE", productsPath+"/records/p-gone", "", nil, nil)

	for _, x := range pages {
		// Reconnects back off up to 10s (jittered); allow for that.
		x.p.waitLive(x.transport)
		x.p.waitRow("p-after", "shown after the restart", `r && r.name === 'After' && r.price === '20.00'`, 2*changeTimeout)
		x.p.waitRow("p-before", "renamed", `r && r.name === 'Before, renamed'`, changeTimeout)
		x.p.waitRow("p-gone", "removed", `!r`, changeTimeout)
		var marker int
		x.p.eval("reading the marker", `window.__noReload ?? 0`, &marker)
		if marker != 1 {
			t.Errorf("page %s: window.__noReload = %d: the page was reloaded", x.p.name, marker)
		}
		// Same store, same epoch: the page resumed from its cursor. Its
		// log of sync references has the first snapshot and no other.
		var resets int
		x.p.eval("counting snapshots", `document.querySelectorAll('[data-testid="sync-entry"].reset').length`, &resets)
		if resets != 1 {
			t.Errorf("page %s: %d snapshots in the sync log, want only the first: a restart on the same store must resume, not reset", x.p.name, resets)
		}
	}
}
