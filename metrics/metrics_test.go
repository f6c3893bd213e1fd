package metrics_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/store/memstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// Prometheus fits every place it is plugged into, without importing them.
var (
	_ viewsync.Metrics = (*metrics.Prometheus)(nil)
	_ httpapi.Observer = (*metrics.Prometheus)(nil)
	_ metrics.Lagger   = (*viewsync.Hub)(nil)
)

// TestScrape: what a hub and the HTTP API report shows in the scrape.
func TestScrape(t *testing.T) {
	p := metrics.New()
	hub, err := viewsync.New(memstore.New(nil), viewsync.WithMetrics(p))
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	p.TrackLagging(hub, time.Hour)
	c, err := hub.Collection("board")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(context.Background(), "a", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Head(context.Background()); err != nil { // as a reader does
		t.Fatal(err)
	}
	hub.Rendered("client", "board", 1)
	p.TrackSource("postgres", "viewsync", func() metrics.SourceStats {
		return metrics.SourceStats{Connected: true, LagBytes: 4096, LagSeconds: 0.25, Transactions: 7, Reconnects: 1}
	})
	p.ObserveRequest("GET /v1/collections/{c}", 200, time.Millisecond)
	p.Denied("forbidden")

	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"viewsync_commits_total 1",
		`viewsync_collection_version{collection="board"} 1`,
		`viewsync_commit_visible_seconds_count{collection="board"} 1`,
		`viewsync_clients_lagging{collection="board"} 0`,
		`viewsync_http_requests_total{code="200",route="GET /v1/collections/{c}"} 1`,
		`viewsync_denied_total{code="forbidden"} 1`,
		`viewsync_source_connected{slot="viewsync",source="postgres"} 1`,
		`viewsync_source_lag_bytes{slot="viewsync",source="postgres"} 4096`,
		`viewsync_source_lag_seconds{slot="viewsync",source="postgres"} 0.25`,
		`viewsync_source_transactions_total{slot="viewsync",source="postgres"} 7`,
		`viewsync_source_reconnects_total{slot="viewsync",source="postgres"} 1`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("the scrape lacks %q", want)
		}
	}
}
