// Package metrics exports viewsync's measurements to Prometheus. A
// Prometheus is the hub's viewsync.Metrics and the HTTP API's
// httpapi.Options.Observer, keeping the Prometheus client out of the core
// packages; it depends on neither.
//
// Caveats: the per-collection version gauge has one series per collection
// written since start; deployments with very many collections should expect
// as many series.
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
	versions  *prometheus.GaugeVec
	requests  *prometheus.CounterVec
	reqDur    *prometheus.HistogramVec
	visible   *prometheus.HistogramVec
	denied    *prometheus.CounterVec
}

// New returns metrics registered in a new registry, along with the Go
// runtime and process collectors.
func New() *Prometheus {
	reg := prometheus.NewRegistry()
	p := &Prometheus{
		reg: reg,
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
		versions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "viewsync_collection_version", Help: "Latest committed version per collection.",
		}, []string{"collection"}),
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
			Help:    "Time from a commit to a client reporting it rendered (WebSocket ack, or the cursor of its next poll), per collection.",
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
	reg.MustRegister(p.commits, p.ops, p.commitDur, p.versions, p.requests, p.reqDur, p.visible, p.denied,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return p
}

// Committed implements viewsync.Metrics: it counts a durable commit.
func (p *Prometheus) Committed(collection string, ops int, version uint64, took time.Duration) {
	p.commits.Inc()
	p.ops.Add(float64(ops))
	p.commitDur.Observe(took.Seconds())
	p.versions.WithLabelValues(collection).Set(float64(version))
}

// Visible implements viewsync.Metrics: it observes a commit→visible time.
func (p *Prometheus) Visible(collection string, took time.Duration) {
	p.visible.WithLabelValues(collection).Observe(took.Seconds())
}

// Lagger counts, per collection, the clients behind by more than a
// threshold; *viewsync.Hub is one.
type Lagger interface {
	Lagging(threshold time.Duration) map[string]int
}

// TrackLagging exports viewsync_clients_lagging{collection}: the clients
// whose first unrendered commit is older than threshold, computed from hub
// at each scrape.
func (p *Prometheus) TrackLagging(hub Lagger, threshold time.Duration) {
	p.reg.MustRegister(&laggingCollector{hub: hub, threshold: threshold})
}

var laggingDesc = prometheus.NewDesc("viewsync_clients_lagging",
	"Clients showing a version whose next commit was made more than the lag threshold ago, per collection.",
	[]string{"collection"}, nil)

type laggingCollector struct {
	hub       Lagger
	threshold time.Duration
}

func (c *laggingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- laggingDesc }

func (c *laggingCollector) Collect(ch chan<- prometheus.Metric) {
	for coll, n := range c.hub.Lagging(c.threshold) {
		ch <- prometheus.MustNewConstMetric(laggingDesc, prometheus.GaugeValue, float64(n), coll)
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
