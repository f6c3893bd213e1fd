package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/viewsync/viewsync/presence"
)

// TrackPresence exports the presence registry's figures, read from stats
// (presence.Registry.Stats) at each scrape: viewsync_presence_members,
// _sessions and _remote (gauges), viewsync_presence_sets_limited_total,
// and with a bus between nodes viewsync_presence_bus_messages_total and
// _bus_bytes_total by direction (in, out),
// viewsync_presence_bus_dropped_total and _bus_failed_total.
func (p *Prometheus) TrackPresence(stats func() presence.Stats) {
	p.reg.MustRegister(&presenceCollector{stats: stats})
}

var (
	presenceMembersDesc = prometheus.NewDesc("viewsync_presence_members",
		"Members present in all collections, as subscribers see them: this node's and the other nodes'.", nil, nil)
	presenceSessionsDesc = prometheus.NewDesc("viewsync_presence_sessions",
		"This node's connections' presences, one per connection and collection.", nil, nil)
	presenceRemoteDesc = prometheus.NewDesc("viewsync_presence_remote",
		"Other nodes' presences of members this node keeps, one per node, collection and member.", nil, nil)
	presenceLimitedDesc = prometheus.NewDesc("viewsync_presence_sets_limited_total",
		"Presence sets refused (429) because the connection set its state more often than --presence-set-rate.", nil, nil)
	presenceBusMsgDesc = prometheus.NewDesc("viewsync_presence_bus_messages_total",
		"Presence messages between nodes: published (out) and received from other nodes (in).", []string{"direction"}, nil)
	presenceBusBytesDesc = prometheus.NewDesc("viewsync_presence_bus_bytes_total",
		"Bytes of presence messages between nodes: published (out) and received from other nodes (in).", []string{"direction"}, nil)
	presenceBusDroppedDesc = prometheus.NewDesc("viewsync_presence_bus_dropped_total",
		"Presence messages from other nodes dropped: malformed, oversized or of another version.", nil, nil)
	presenceBusFailedDesc = prometheus.NewDesc("viewsync_presence_bus_failed_total",
		"Presence messages this node failed to publish (NATS connection down); the next refresh repairs them.", nil, nil)
)

type presenceCollector struct {
	stats func() presence.Stats
}

func (c *presenceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{presenceMembersDesc, presenceSessionsDesc, presenceRemoteDesc, presenceLimitedDesc,
		presenceBusMsgDesc, presenceBusBytesDesc, presenceBusDroppedDesc, presenceBusFailedDesc} {
		ch <- d
	}
}

func (c *presenceCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(presenceMembersDesc, prometheus.GaugeValue, float64(st.Members))
	ch <- prometheus.MustNewConstMetric(presenceSessionsDesc, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(presenceRemoteDesc, prometheus.GaugeValue, float64(st.Remote))
	ch <- prometheus.MustNewConstMetric(presenceLimitedDesc, prometheus.CounterValue, float64(st.Limited))
	ch <- prometheus.MustNewConstMetric(presenceBusMsgDesc, prometheus.CounterValue, float64(st.BusIn), "in")
	ch <- prometheus.MustNewConstMetric(presenceBusMsgDesc, prometheus.CounterValue, float64(st.BusOut), "out")
	ch <- prometheus.MustNewConstMetric(presenceBusBytesDesc, prometheus.CounterValue, float64(st.BusInBytes), "in")
	ch <- prometheus.MustNewConstMetric(presenceBusBytesDesc, prometheus.CounterValue, float64(st.BusOutBytes), "out")
	ch <- prometheus.MustNewConstMetric(presenceBusDroppedDesc, prometheus.CounterValue, float64(st.BusDropped))
	ch <- prometheus.MustNewConstMetric(presenceBusFailedDesc, prometheus.CounterValue, float64(st.BusFailed))
}
