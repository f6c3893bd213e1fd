package browser

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestSeedOnFirstLoad: a server started on an empty store with the
// demo's samples on shows them at the first load of the page — every
// category among them, in the grid and in the log's first snapshot — and
// a restart on the same store does not write them again.
func TestSeedOnFirstLoad(t *testing.T) {
	b := newBrowser(t)
	data, addr := t.TempDir(), freeAddr(t)
	srv := startServer(t, data, addr, "--demo-seed=true")
	srv.waitServing()
	if !strings.Contains(srv.out.String(), "seeded") {
		t.Errorf("the server does not log the seeding:\n%s", srv.out.String())
	}
	recs := srv.snapshot()
	if len(recs) < 6 || len(recs) > 8 {
		t.Fatalf("the fresh server holds %d products, want 6 to 8 samples: %+v", len(recs), recs)
	}
	var ids []string
	cats := map[string]bool{}
	for _, r := range recs {
		ids = append(ids, r.ID)
		cats[r.Value.Category] = true
		if r.Version != 1 {
			t.Errorf("sample %s at version %d, want 1: one commit", r.ID, r.Version)
		}
	}

	p := b.open(t, "A", srv.url+"/")
	p.waitLive("")
	p.waitKeys("the samples", ids...)
	var shown struct {
		Categories []string `json:"categories"`
		Empty      bool     `json:"empty"`
		Snapshot   string   `json:"snapshot"`
	}
	p.eval("reading the grid", `({
  categories: [...new Set([...document.querySelectorAll('[data-testid="product-category"]')].map((c) => c.value))].sort(),
  empty: !document.querySelector('[data-testid="empty"]').hidden,
  snapshot: [...document.querySelectorAll('[data-testid="sync-entry"].reset')].map((e) => e.textContent).join(' | '),
})`, &shown)
	if !slices.Equal(shown.Categories, []string{"furniture", "kitchen", "lighting"}) || len(cats) != 3 {
		t.Errorf("the samples' categories: shown %q, stored %v; want furniture, kitchen and lighting", shown.Categories, cats)
	}
	if shown.Empty {
		t.Error("the page says it has no products")
	}
	if want := "snapshot of " + strconv.Itoa(len(recs)) + " products"; !strings.Contains(shown.Snapshot, want) {
		t.Errorf("the log's snapshot says %q, want %q", shown.Snapshot, want)
	}

	// Restart on the same store: no second seeding.
	if _, err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, data, addr, "--demo-seed=true")
	srv.waitServing()
	if strings.Contains(srv.out.String(), "seeded") {
		t.Errorf("the restarted server seeds again:\n%s", srv.out.String())
	}
	if got := srv.snapshot(); len(got) != len(recs) {
		t.Errorf("after the restart: %d products, want the %d samples alone", len(got), len(recs))
	}
}

// waitServing waits for the server's log line saying it serves, which
// comes after whatever it logged at start (seeding included).
func (s *server) waitServing() {
	s.t.Helper()
	s.eventually("the log line saying the server serves", startTimeout, func() error {
		if !strings.Contains(s.out.String(), "viewsync serving") {
			return errors.New("not logged yet")
		}
		return nil
	})
}
