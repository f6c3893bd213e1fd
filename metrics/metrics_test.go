package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
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

// lagger is a Lagger with fixed counts.
type lagger map[string]int

func (l lagger) Lagging(time.Duration) map[string]int { return l }

// TestCollectionSeriesBounded: with 100,000 collections written, the
// scrape holds series of their own for the busiest and the named
// collections only, the rest summed as "_other", and stays under 100 KB.
func TestCollectionSeriesBounded(t *testing.T) {
	p := metrics.NewWithOptions(metrics.Options{Collections: 3, Named: []string{"vip"}})
	for coll, n := range map[string]int{"a": 5, "b": 4, "c": 3, "d": 2, "vip": 1} {
		for i := range n {
			p.Committed(coll, 1, uint64(i+1), time.Millisecond)
		}
	}
	for i := range 100_000 {
		p.Committed(fmt.Sprintf("room-%06d", i), 1, 1, time.Millisecond)
	}
	for _, coll := range []string{"d", "room-000001", "c", "a", "b", "vip", "room-000002"} {
		p.Visible(coll, 20*time.Millisecond)
	}
	p.TrackLagging(lagger{"x": 5, "y": 1, "z": 3, "w": 2, "vip": 0, "v": 1}, time.Second)

	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if len(body) > 100<<10 {
		t.Errorf("the scrape is %d bytes with 100,000 collections, want under 100 KiB", len(body))
	}
	series := func(name string) []string {
		var out []string
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
				out = append(out, strings.TrimSpace(line))
			}
		}
		return out
	}
	check := func(name string, want ...string) {
		t.Helper()
		if got := series(name); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	check("viewsync_collection_version",
		`viewsync_collection_version{collection="a"} 5`, `viewsync_collection_version{collection="b"} 4`,
		`viewsync_collection_version{collection="c"} 3`, `viewsync_collection_version{collection="vip"} 1`)
	check("viewsync_collections_written", "viewsync_collections_written 100005")
	check("viewsync_commit_visible_seconds_count",
		`viewsync_commit_visible_seconds_count{collection="_other"} 3`, `viewsync_commit_visible_seconds_count{collection="c"} 1`,
		`viewsync_commit_visible_seconds_count{collection="d"} 1`, `viewsync_commit_visible_seconds_count{collection="room-000001"} 1`,
		`viewsync_commit_visible_seconds_count{collection="vip"} 1`)
	check("viewsync_clients_lagging",
		`viewsync_clients_lagging{collection="_other"} 2`, `viewsync_clients_lagging{collection="vip"} 0`,
		`viewsync_clients_lagging{collection="w"} 2`, `viewsync_clients_lagging{collection="x"} 5`, `viewsync_clients_lagging{collection="z"} 3`)
	t.Logf("scrape: %d bytes", len(body))
}

// TestNATSStats: viewsync_nats_open_collections,
// viewsync_nats_log_reads_total, viewsync_nats_record_reads_total and
// viewsync_nats_records_scanned_total read the store's counts at each
// scrape.
func TestNATSStats(t *testing.T) {
	p := metrics.New()
	open, reads := 3, uint64(0)
	p.TrackOpenCollections(func() int { return open })
	p.TrackLogReads(func() uint64 { return reads })
	p.TrackRecordReads(func() uint64 { return reads * 2 })
	p.TrackRecordScans(func() uint64 { return reads * 3 })
	for _, want := range [][]string{
		{"viewsync_nats_open_collections 3", "viewsync_nats_log_reads_total 0", "viewsync_nats_record_reads_total 0", "viewsync_nats_records_scanned_total 0"},
		{"viewsync_nats_open_collections 0", "viewsync_nats_log_reads_total 1200", "viewsync_nats_record_reads_total 2400", "viewsync_nats_records_scanned_total 3600"},
	} {
		rec := httptest.NewRecorder()
		p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for _, w := range want {
			if !strings.Contains(rec.Body.String(), w+"\n") {
				t.Errorf("scrape lacks %q", w)
			}
		}
		open, reads = 0, 1200
	}
}
