// Package metrics exports viewsync's measurements to Prometheus. A
// Prometheus is the hub's viewsync.Metrics and the HTTP API's
// httpapi.Options.Observer, keeping the Prometheus client out of the core
// packages; it depends on neither.
//
// Series per collection are bounded (Options.Collections and
// Options.Named): whatever the number of collections, a scrape stays
// small. The collections past the bound are summed into the series
// labelled collection="_other".
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/viewsync/viewsync/limit"
)

// Prometheus records viewsync's metrics in a Prometheus registry.
type Prometheus struct {
	reg       *prometheus.Registry
	commits   prometheus.Counter
	ops       prometheus.Counter
	commitDur prometheus.Histogram
	colls     *collections
	requests  *prometheus.CounterVec
	reqDur    *prometheus.HistogramVec
	visible   *prometheus.HistogramVec
	denied    *prometheus.CounterVec
}

// Other is the collection label of the series that sum the collections
// past the bound of Options.
const Other = "_other"

// DefaultCollections is the default of Options.Collections.
const DefaultCollections = 20

// Options bound the series per collection.
type Options struct {
	// Collections is how many collections get series of their own beyond
	// Named: the busiest by commits since start for
	// viewsync_collection_version, the most lagging clients for
	// viewsync_clients_lagging, and the first seen for the
	// viewsync_commit_visible_seconds histogram. Default
	// DefaultCollections; negative: none.
	Collections int
	// Named collections always get series of their own.
	Named []string
}

// New returns metrics with the default Options; see NewWithOptions.
func New() *Prometheus { return NewWithOptions(Options{}) }

// NewWithOptions returns metrics registered in a new registry, along with
// the Go runtime and process collectors.
func NewWithOptions(o Options) *Prometheus {
	switch {
	case o.Collections == 0:
		o.Collections = DefaultCollections
	case o.Collections < 0:
		o.Collections = 0
	}
	reg := prometheus.NewRegistry()
	p := &Prometheus{
		reg:   reg,
		colls: newCollections(o),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viewsync_commits_total", Help: "Durable commits applied.",
		}),
		ops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "viewsync_commit_ops_total", Help: "Ops applied in durable commits.",
		}),
		commitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "viewsync_commit_duration_seconds",
			Help:    "Time from a commit's validation to its durable acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "viewsync_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		reqDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "viewsync_http_request_duration_seconds",
			Help:    "HTTP request latency by route (long-polls include their wait).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2.5, 14),
		}, []string{"route"}),
		visible: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "viewsync_commit_visible_seconds",
			Help:    "Time from a commit to a client reporting it rendered (WebSocket ack, or the cursor of its next poll), per collection (the first ones seen and the named ones; the rest as collection=\"_other\").",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"collection"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "viewsync_denied_total",
			Help: "Requests and WebSocket messages refused by access control, by code: unauthorized, forbidden, rate_limited (commits or calls per second) or too_many_connections (per client address).",
		}, []string{"code"}),
	}
	for _, c := range []string{"unauthorized", "forbidden", "rate_limited", "too_many_connections"} {
		p.denied.WithLabelValues(c)
	}
	reg.MustRegister(p.commits, p.ops, p.commitDur, p.colls, p.requests, p.reqDur, p.visible, p.denied,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return p
}

// Committed implements viewsync.Metrics: it counts a durable commit.
func (p *Prometheus) Committed(collection string, ops int, version uint64, took time.Duration) {
	p.commits.Inc()
	p.ops.Add(float64(ops))
	p.commitDur.Observe(took.Seconds())
	p.colls.committed(collection, version)
}

// Visible implements viewsync.Metrics: it observes a commit→visible time.
func (p *Prometheus) Visible(collection string, took time.Duration) {
	p.visible.WithLabelValues(p.colls.histogramLabel(collection)).Observe(took.Seconds())
}

// Lagger counts, per collection, the clients behind by more than a
// threshold; *viewsync.Hub is one.
type Lagger interface {
	Lagging(threshold time.Duration) map[string]int
}

// TrackLagging exports viewsync_clients_lagging{collection}: the clients
// whose first unrendered commit is older than threshold, computed from hub
// at each scrape; the collections with the most, and the named ones, each
// on a series of its own, the rest summed as collection="_other".
func (p *Prometheus) TrackLagging(hub Lagger, threshold time.Duration) {
	p.reg.MustRegister(&laggingCollector{hub: hub, threshold: threshold, colls: p.colls})
}

var laggingDesc = prometheus.NewDesc("viewsync_clients_lagging",
	"Clients showing a version whose next commit was made more than the lag threshold ago, per collection.",
	[]string{"collection"}, nil)

type laggingCollector struct {
	hub       Lagger
	threshold time.Duration
	colls     *collections
}

func (c *laggingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- laggingDesc }

func (c *laggingCollector) Collect(ch chan<- prometheus.Metric) {
	lagging := c.hub.Lagging(c.threshold)
	own, other := c.colls.pick(len(lagging), func(yield func(string, uint64) bool) {
		for coll, n := range lagging {
			if !yield(coll, uint64(n)) {
				return
			}
		}
	})
	for _, coll := range own {
		ch <- prometheus.MustNewConstMetric(laggingDesc, prometheus.GaugeValue, float64(lagging[coll]), coll)
	}
	if other.n > 0 {
		ch <- prometheus.MustNewConstMetric(laggingDesc, prometheus.GaugeValue, float64(other.sum), Other)
	}
}

// TrackHistoryMemory exports viewsync_history_memory_bytes (what reads of
// history hold now; above the _limit when a catch-up or snapshot
// overdraws it) and viewsync_history_memory_limit_bytes.
func (p *Prometheus) TrackHistoryMemory(m *limit.Memory) {
	p.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "viewsync_history_memory_bytes",
			Help: "Bytes that reads of history (pages, catch-ups, snapshots) hold now, of --history-memory.",
		}, func() float64 { return float64(m.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "viewsync_history_memory_limit_bytes",
			Help: "The memory reads of history may hold at once (--history-memory).",
		}, func() float64 { return float64(m.Max()) }),
	)
}

// TrackOpenCollections exports viewsync_nats_open_collections, read from
// open (natskv.Store.OpenCollections) at each scrape: the collections the
// NATS engine has open on this node, each with its state in memory (and,
// in the stream layout, a consumer on a NATS server).
func (p *Prometheus) TrackOpenCollections(open func() int) {
	p.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "viewsync_nats_open_collections",
		Help: "Collections open on this node (--engine nats): read, written or subscribed to within --nats-idle-after; in the stream layout each has a consumer on a NATS server.",
	}, func() float64 { return float64(open()) }))
}

// TrackLogReads exports viewsync_nats_log_reads_total, read from reads
// (natskv.Store.LogReads) at each scrape: the commits the NATS engine read
// from NATS for clients resuming from further back than its log cache.
func (p *Prometheus) TrackLogReads(reads func() uint64) {
	p.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "viewsync_nats_log_reads_total",
		Help: "Commits read from NATS for changes older than this node's log cache (--nats-log-cache).",
	}, func() float64 { return float64(reads()) }))
}

// TrackRecordReads exports viewsync_nats_record_reads_total, read from
// reads (natskv.Store.RecordReads) at each scrape: the record values the
// NATS engine read from NATS, being no longer in its record cache.
func (p *Prometheus) TrackRecordReads(reads func() uint64) {
	p.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "viewsync_nats_record_reads_total",
		Help: "Record values read from NATS for snapshots, catch-ups and commits, being no longer in this node's record cache (--nats-record-cache).",
	}, func() float64 { return float64(reads()) }))
}

// TrackRecordScans exports viewsync_nats_records_scanned_total, read from
// scanned (natskv.Store.RecordsScanned) at each scrape: the record
// messages the NATS engine read by sequence for snapshots and catch-ups
// of collections larger than its record index.
func (p *Prometheus) TrackRecordScans(scanned func() uint64) {
	p.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "viewsync_nats_records_scanned_total",
		Help: "Record messages read from NATS for snapshots and catch-ups of collections with more records than this node's record index (--nats-record-index).",
	}, func() float64 { return float64(scanned()) }))
}

// ObserveRequest counts and times a request, as httpapi.Observer asks.
func (p *Prometheus) ObserveRequest(route string, status int, took time.Duration) {
	p.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	p.reqDur.WithLabelValues(route).Observe(took.Seconds())
}

// Denied counts a refusal by access control; code is "unauthorized",
// "forbidden", "rate_limited" or "too_many_connections". It fits
// auth.Policy.Denied.
func (p *Prometheus) Denied(code string) { p.denied.WithLabelValues(code).Inc() }

// Registry returns the registry, for registering more collectors.
func (p *Prometheus) Registry() *prometheus.Registry { return p.reg }

// Handler serves the metrics in the Prometheus text format.
func (p *Prometheus) Handler() http.Handler {
	return promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg})
}

// SourceStats are a source's figures at a scrape: package pgsource's
// Stats, which the caller converts, so that this package depends on no
// source.
type SourceStats struct {
	// Connected tells whether the source streams now.
	Connected bool
	// LagBytes is how far the source's database is ahead of what the
	// source made durable: WAL its replication slot keeps.
	LagBytes uint64
	// LagSeconds is the time from the latest applied transaction's
	// commit to its being durable in viewsync; 0 while caught up.
	LagSeconds float64
	// Transactions, Skipped, Reconnects and SnapshotRows count the
	// transactions applied, those skipped as already held, the failed
	// sessions retried and the rows of initial loads.
	Transactions, Skipped, Reconnects, SnapshotRows uint64
}

// TrackSource exports, labelled source and slot, a source's figures read
// from stats at each scrape: viewsync_source_connected,
// viewsync_source_lag_bytes, viewsync_source_lag_seconds and the counters
// viewsync_source_transactions_total,
// viewsync_source_skipped_transactions_total,
// viewsync_source_reconnects_total and viewsync_source_snapshot_rows_total.
func (p *Prometheus) TrackSource(source, slot string, stats func() SourceStats) {
	p.reg.MustRegister(&sourceCollector{labels: []string{source, slot}, stats: stats})
}

var (
	sourceLabels         = []string{"source", "slot"}
	sourceConnectedDesc  = prometheus.NewDesc("viewsync_source_connected", "1 while the source streams from its database, else 0 (connecting, loading, reconnecting).", sourceLabels, nil)
	sourceLagBytesDesc   = prometheus.NewDesc("viewsync_source_lag_bytes", "Bytes of WAL the source's database holds past what viewsync made durable and confirmed to its replication slot.", sourceLabels, nil)
	sourceLagSecondsDesc = prometheus.NewDesc("viewsync_source_lag_seconds", "Seconds from the latest applied transaction's commit in the database to its being durable in viewsync; 0 while caught up.", sourceLabels, nil)
	sourceTxDesc         = prometheus.NewDesc("viewsync_source_transactions_total", "Database transactions applied (one commit per collection each).", sourceLabels, nil)
	sourceSkippedDesc    = prometheus.NewDesc("viewsync_source_skipped_transactions_total", "Database transactions skipped because the collections already held them (replayed after a restart).", sourceLabels, nil)
	sourceReconnectsDesc = prometheus.NewDesc("viewsync_source_reconnects_total", "Source sessions that failed and were retried.", sourceLabels, nil)
	sourceRowsDesc       = prometheus.NewDesc("viewsync_source_snapshot_rows_total", "Rows read by initial loads of tables.", sourceLabels, nil)
)

type sourceCollector struct {
	labels []string
	stats  func() SourceStats
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sourceConnectedDesc, sourceLagBytesDesc, sourceLagSecondsDesc, sourceTxDesc, sourceSkippedDesc, sourceReconnectsDesc, sourceRowsDesc} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(sourceConnectedDesc, prometheus.GaugeValue, connected, c.labels...)
	ch <- prometheus.MustNewConstMetric(sourceLagBytesDesc, prometheus.GaugeValue, float64(s.LagBytes), c.labels...)
	ch <- prometheus.MustNewConstMetric(sourceLagSecondsDesc, prometheus.GaugeValue, s.LagSeconds, c.labels...)
	ch <- prometheus.MustNewConstMetric(sourceTxDesc, prometheus.CounterValue, float64(s.Transactions), c.labels...)
	ch <- prometheus.MustNewConstMetric(sourceSkippedDesc, prometheus.CounterValue, float64(s.Skipped), c.labels...)
	ch <- prometheus.MustNewConstMetric(sourceReconnectsDesc, prometheus.CounterValue, float64(s.Reconnects), c.labels...)
	ch <- prometheus.MustNewConstMetric(sourceRowsDesc, prometheus.CounterValue, float64(s.SnapshotRows), c.labels...)
}
