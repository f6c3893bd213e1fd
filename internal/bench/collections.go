package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
)

const collectionsUsage = `Usage: viewsync bench collections [flags]

Many small collections, one subscriber each: the cost of a collection per
user, document or room. In four phases, against a fresh spawned server (or
the one at --url):
  1. write: --writers PUT --records records into each of --collections
     collections NAME-0 … NAME-(N-1) (NAME is --collection); reports the
     server's anonymous memory (RssAnon) and data directory per written
     collection, and the size of /metrics;
  2. connect: one subscriber (--transport) per collection (or to the first
     --subscribers of them); reports the connect time and the memory per
     live collection (its written collection included);
  3. commit: --rate commits a second for --duration, each a PUT to a random
     followed collection; reports commit → receipt latency, missing and
     duplicated commits (both must be 0);
  4. /metrics again.
Memory and data figures need --spawn. Subscribers past what this process
may hold (or --loaders N) are spread over loader processes.

With --nats-cluster the spawned server is a cluster: three NATS JetStream
servers and three viewsync nodes (--engine nats --nats-replicas 3). The
writes and commits go to node 0, the subscribers to node 1 (to nodes 1 to
N-1 with --nats-nodes N above 3), so that node 0's memory is that of
written collections it keeps open, the others' that of
collections opened by a subscriber (the collection's follower, and in the
stream layout its NATS consumer); the nodes take the layout from
VIEWSYNC_NATS_LAYOUT. The report adds each NATS server's memory and
storage per collection, and every process's CPU while idle.

Flags (each also settable as VIEWSYNC_<NAME>, e.g. VIEWSYNC_COLLECTIONS):
`

// collectionsConfig holds the flags of 'viewsync bench collections'.
type collectionsConfig struct {
	benchCommon
	records   int
	writers   int
	rate      float64
	duration  time.Duration
	valueSize cliflag.Size
	settle    time.Duration
	drain     time.Duration
	loaders   int
	subs      int
}

func (c *collectionsConfig) register(fs *flag.FlagSet) {
	c.registerSubscribers(fs)
	c.registerCluster(fs)
	c.registerClusterNodes(fs, "the subscribers are spread evenly over nodes 1 to N-1, so that more connect than one node's open-files limit holds")
	fs.IntVar(&c.colls, "collections", 1000, "collections, each written and followed by one subscriber")
	fs.IntVar(&c.records, "records", 1, "records written into each collection before the subscribers connect")
	fs.IntVar(&c.subs, "subscribers", 0, "collections followed, one subscriber each, from NAME-0 on: 0 follows every one (fewer measure many written collections on a machine whose open-files limit holds fewer connections)")
	fs.IntVar(&c.writers, "writers", 16, "concurrent writers of the write phase")
	fs.Float64Var(&c.rate, "rate", 100, "commits per second of the commit phase, each to a random collection")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the commit phase writes")
	registerValueSize(fs, &c.valueSize)
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "wait before each memory reading, for the server to settle")
	fs.DurationVar(&c.drain, "drain", 15*time.Second, "time the subscribers have, once the writer stops, to receive its last commits")
	fs.IntVar(&c.loaders, "loaders", 0, "processes holding the subscribers' connections: 1 is this one; 0 chooses by the open-files limit")
}

func (c *collectionsConfig) check(*flag.FlagSet) error {
	return checkFlags(
		check{c.colls <= 0, "--collections must be positive"},
		check{c.records < 0, "--records must not be negative"},
		check{c.writers <= 0, "--writers must be positive"},
		check{c.rate <= 0 || math.IsInf(c.rate, 0) || math.IsNaN(c.rate), "--rate must be positive"},
		check{c.duration <= 0 || c.drain <= 0, "--duration and --drain must be positive"},
		check{c.settle < 0, "--settle must not be negative"},
		check{c.loaders < 0, "--loaders must not be negative"},
		check{c.subs < 0, "--subscribers must not be negative"},
		check{c.natsNodes < clusterSize || c.natsNodes > maxClusterNodes, fmt.Sprintf("--nats-nodes must be %d to %d", clusterSize, maxClusterNodes)},
		check{c.natsNodes != clusterSize && !c.natsCluster, "--nats-nodes needs --nats-cluster"},
		valueSizeCheck(c.valueSize))
}

// collectionsReport is the result of a collections run.
type collectionsReport struct {
	reportHead
	Collections int `json:"collections"`
	Records     int `json:"records_per_collection"`

	// The write phase.
	WriteSeconds float64 `json:"write_seconds"`
	WriteErrors  int64   `json:"write_errors"`
	// Memory and data (--spawn): anonymous resident memory before the
	// collections, once written, once followed; the data directory.
	AnonBaseBytes          uint64  `json:"anon_base_bytes,omitempty"`
	AnonWrittenBytes       uint64  `json:"anon_written_bytes,omitempty"`
	AnonLiveBytes          uint64  `json:"anon_live_bytes,omitempty"`
	AnonPerWrittenBytes    float64 `json:"anon_per_written_collection_bytes,omitempty"`
	AnonPerLiveBytes       float64 `json:"anon_per_live_collection_bytes,omitempty"`
	DataBytes              int64   `json:"data_bytes,omitempty"`
	DataPerCollectionBytes float64 `json:"data_per_collection_bytes,omitempty"`
	MetricsBytes           int     `json:"metrics_bytes"`
	MetricsAfterBytes      int     `json:"metrics_after_bytes"`

	// The connect phase.
	Subscribers    int     `json:"subscribers"`
	Established    int     `json:"established"`
	ConnectSeconds float64 `json:"connect_seconds"`

	// The commit phase.
	Rate    float64        `json:"rate"`
	Seconds float64        `json:"duration_seconds"`
	Commits int            `json:"commits"`
	Errors  int            `json:"commit_errors"`
	Latency latencySummary `json:"latency"`
	// CommitLatency is a PUT's round trip, as the writer sees it: the
	// durable commit and the HTTP stack, before any delivery.
	CommitLatency latencySummary `json:"commit_latency"`
	Deliveries    int64          `json:"deliveries"`
	Missing       int64          `json:"missing"`
	Duplicated    int64          `json:"duplicated"`
	CatchUps      int64          `json:"catch_ups"`
	Reconnects    int64          `json:"reconnects"`
	LastError     string         `json:"last_error,omitempty"`

	// Cluster holds the figures of --nats-cluster.
	Cluster *collectionsCluster `json:"cluster,omitempty"`
}

// collectionsCluster are the figures of a run on a spawned cluster: the
// anonymous memory of each viewsync node and the memory and storage of
// each NATS server before the collections, once written (through node 0),
// once followed (on nodes 1 to N-1), and the CPU each process used while idle
// with every collection followed.
type collectionsCluster struct {
	NodeAnon [3][]uint64 `json:"node_anon_bytes"`
	NATSAnon [3][]uint64 `json:"nats_anon_bytes"`
	NATSData [3][]int64  `json:"nats_data_bytes"`
	// NATSConsumers counts the cluster's consumers at each reading (-1:
	// unknown): one per collection each node has open.
	NATSConsumers [3]int  `json:"nats_consumers"`
	IdleSeconds   float64 `json:"idle_seconds"`
	// IdleNodeCPU and IdleNATSCPU are CPU seconds per second (1 is one
	// core) of each viewsync node and NATS server while idle.
	IdleNodeCPU []float64 `json:"idle_node_cpu"`
	IdleNATSCPU []float64 `json:"idle_nats_cpu"`
	// Per collection, or live subscription, in bytes.
	NodeAnonPerWritten float64 `json:"node0_anon_per_written_collection_bytes"`
	NodeAnonPerLive    float64 `json:"node1_anon_per_live_collection_bytes"`
	NATSAnonPerWritten float64 `json:"nats_anon_per_written_collection_bytes"`
	NATSAnonPerLive    float64 `json:"nats_anon_per_live_collection_bytes"`
	NATSDataPerWritten float64 `json:"nats_data_per_collection_bytes"`
}

// phase indexes of collectionsCluster's readings.
const (
	phaseBase = iota
	phaseWritten
	phaseLive
)

// read takes the cluster's memory and storage readings of phase ph.
func (cc *collectionsCluster) read(cl *benchCluster, ph int) {
	cc.NodeAnon[ph] = nil
	for _, s := range cl.nodes {
		a, _ := readAnon(s.pid())
		cc.NodeAnon[ph] = append(cc.NodeAnon[ph], a)
	}
	ns := cl.natsStats()
	cc.NATSAnon[ph], cc.NATSData[ph], cc.NATSConsumers[ph] = ns.AnonBytes, ns.DataBytes, ns.Consumers
}

// sumDelta is the growth of the sum of vs from phase a to phase b.
func sumDelta[T uint64 | int64](vs [3][]T, a, b int) float64 {
	var d float64
	for i := range vs[b] {
		d += float64(vs[b][i]) - float64(vs[a][i])
	}
	return d
}

func (c *collectionsConfig) run(ctx context.Context, stdout, stderr io.Writer) error {
	t, err := openTarget(ctx, &c.benchCommon, c.colls+c.writers, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	client := t.keepAliveClient(c.writers)
	defer client.CloseIdleConnections()
	rep := &collectionsReport{reportHead: t.head("collections", c.transport), Collections: c.colls, Records: c.records,
		Rate: c.rate, Seconds: c.duration.Seconds()}
	var cc *collectionsCluster
	if t.cluster != nil {
		cc = &collectionsCluster{}
		rep.Cluster = cc
	}
	anon := func(ph int) uint64 {
		if t.server == nil {
			return 0
		}
		sleepFor(ctx, c.settle)
		if cc != nil {
			cc.read(t.cluster, ph)
		}
		a, _ := readAnon(t.server.pid())
		return a
	}
	if _, err := getHead(ctx, client, t.base, spreadCollection(c.collection, 0)); err != nil {
		return err
	}
	rep.AnonBaseBytes = anon(phaseBase)

	// 1. Write.
	fmt.Fprintf(stderr, "bench: writing %d records into each of %d collections with %d writers\n", c.records, c.colls, c.writers)
	start := time.Now()
	every := 10000
	if t.cluster != nil {
		// A stream each: far slower to make.
		every = 500
	}
	var next, errs atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	for range c.writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= c.colls {
					return
				}
				for r := range c.records {
					u := t.base + "/v1/collections/" + spreadCollection(c.collection, k) + "/records/r" + strconv.Itoa(r)
					if _, err := put(ctx, client, u, benchValue(time.Now(), r, int(c.valueSize))); err != nil {
						errs.Add(1)
						lastErr.Store(err.Error())
					}
				}
				if (k+1)%every == 0 {
					fmt.Fprintf(stderr, "bench: %d collections written (%.1fs)\n", k+1, time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	rep.WriteSeconds, rep.WriteErrors = round3(time.Since(start).Seconds()), errs.Load()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep.AnonWrittenBytes = anon(phaseWritten)
	if t.server != nil {
		rep.DataBytes = dirSize(t.server.dir)
		if cc != nil {
			// The collections are kept by the NATS servers.
			rep.DataBytes = 0
			for _, d := range cc.NATSData[phaseWritten] {
				rep.DataBytes += d
			}
		}
		rep.DataPerCollectionBytes = round3(float64(rep.DataBytes) / float64(c.colls))
		rep.AnonPerWrittenBytes = round3((float64(rep.AnonWrittenBytes) - float64(rep.AnonBaseBytes)) / float64(c.colls))
	}
	rep.MetricsBytes = metricsSize(ctx, client, t.base)

	// 2. Connect, on a cluster to node 1 (to nodes 1 to N-1 with
	// --nats-nodes N above 3).
	writeBase := t.base
	subs := c.followed()
	loaders := chooseLoaders(c.loaders, subs)
	if t.cluster != nil {
		for _, n := range t.cluster.nodes[1 : 1+subscriberNodes(len(t.cluster.nodes))] {
			t.bases = append(t.bases, "http://"+n.addr)
		}
		t.base = t.bases[0]
		if k := len(t.bases); k > 1 {
			// As many loaders on each node.
			loaders = (max(loaders, k) + k - 1) / k * k
		}
	}
	m := measurement{run: 1, runs: 1, loaders: loaders}
	load, established, setup, err := startLoad(ctx, t, &c.benchCommon, benchRunsFlags{runs: 1, loaders: c.loaders}, m, subs, true, time.Now(), stderr)
	if err != nil {
		return err
	}
	defer load.stop()
	rep.Subscribers, rep.Established, rep.ConnectSeconds = subs, established, setup
	rep.AnonLiveBytes = anon(phaseLive)
	if cc != nil {
		c.clusterFigures(ctx, t.cluster, cc, rep)
	} else if t.server != nil && rep.Established > 0 {
		// Each followed collection's own written cost, and its subscriber's:
		// what the collections nobody follows hold is left out.
		idle := float64(c.colls-rep.Established) * rep.AnonPerWrittenBytes
		rep.AnonPerLiveBytes = round3((float64(rep.AnonLiveBytes) - float64(rep.AnonBaseBytes) - idle) / float64(rep.Established))
	}

	// 3. Commit to random collections.
	commitStart := time.Now()
	w := c.commit(ctx, client, writeBase, &load.sent)
	rep.Commits, rep.Errors, rep.CommitLatency = w.acked, w.errors, summarize(w.putLat)
	if w.lastErr != nil {
		rep.LastError = w.lastErr.Error()
	}
	if err := drainGroups(ctx, load.groups, 0, w.lasts, c.drain); err != nil {
		return err
	}
	res, _, err := load.finish(m, commitStart, time.Now())
	if err != nil {
		return err
	}
	rep.Deliveries, rep.Missing, rep.Duplicated, rep.CatchUps, rep.Reconnects = res.Deliveries, res.Missing, res.Duplicated, res.CatchUps, res.Reconnects
	rep.Latency = res.latencyOf()
	if res.LastError != "" {
		rep.LastError = res.LastError
	}
	rep.MetricsAfterBytes = metricsSize(ctx, client, writeBase)

	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	switch {
	case rep.Missing > 0 || rep.Duplicated > 0:
		return fmt.Errorf("%d commits missing, %d duplicated", rep.Missing, rep.Duplicated)
	case rep.WriteErrors > 0 || rep.Errors > 0:
		return fmt.Errorf("%d writes failed", rep.WriteErrors+int64(rep.Errors))
	case rep.Established < subs:
		return fmt.Errorf("%d of %d subscribers connected", rep.Established, subs)
	}
	return nil
}

// clusterFigures works out the per-collection figures of a cluster run,
// then measures every process's CPU while idle for --settle.
func (c *collectionsConfig) clusterFigures(ctx context.Context, cl *benchCluster, cc *collectionsCluster, rep *collectionsReport) {
	n, live := float64(c.colls), float64(max(rep.Established, 1))
	cc.NodeAnonPerWritten = round3((float64(cc.NodeAnon[phaseWritten][0]) - float64(cc.NodeAnon[phaseBase][0])) / n)
	var grown float64
	for i := 1; i <= subscriberNodes(len(cc.NodeAnon[phaseLive])); i++ {
		grown += float64(cc.NodeAnon[phaseLive][i]) - float64(cc.NodeAnon[phaseWritten][i])
	}
	cc.NodeAnonPerLive = round3(grown / live)
	cc.NATSAnonPerWritten = round3(sumDelta(cc.NATSAnon, phaseBase, phaseWritten) / n)
	cc.NATSAnonPerLive = round3(sumDelta(cc.NATSAnon, phaseWritten, phaseLive) / live)
	cc.NATSDataPerWritten = round3(sumDelta(cc.NATSData, phaseBase, phaseWritten) / n)
	rep.AnonPerWrittenBytes, rep.AnonPerLiveBytes = cc.NodeAnonPerWritten, cc.NodeAnonPerLive
	rep.DataPerCollectionBytes = cc.NATSDataPerWritten

	before, start := cl.cpu(), time.Now()
	sleepFor(ctx, max(c.settle, time.Second))
	after, d := cl.cpu(), time.Since(start)
	cc.IdleSeconds = round3(d.Seconds())
	for i := range after.nodes {
		cc.IdleNodeCPU = append(cc.IdleNodeCPU, round3((after.nodes[i]-before.nodes[i]).Seconds()/d.Seconds()))
	}
	for i := range after.nats {
		cc.IdleNATSCPU = append(cc.IdleNATSCPU, round3((after.nats[i]-before.nats[i]).Seconds()/d.Seconds()))
	}
}

// followed returns how many collections have a subscriber.
func (c *collectionsConfig) followed() int {
	if c.subs <= 0 || c.subs > c.colls {
		return c.colls
	}
	return c.subs
}

// commit PUTs c.rate values a second for c.duration, each to record r0 of
// a random collection, in open loop; lasts holds each collection's last
// acknowledged version.
func (c *collectionsConfig) commit(ctx context.Context, client *http.Client, base string, sent *atomic.Int64) writerResult {
	var (
		mu  sync.Mutex
		res = writerResult{lasts: make([]uint64, c.colls)}
	)
	res.elapsed = openLoop(ctx, c.rate, c.duration, 64, func(i int) {
		k := rand.IntN(c.followed())
		now := time.Now()
		v, err := put(ctx, client, base+"/v1/collections/"+spreadCollection(c.collection, k)+"/records/r0", benchValue(now, i, int(c.valueSize)))
		sent.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.errors, res.lastErr = res.errors+1, err
			return
		}
		res.acked++
		res.lasts[k] = max(res.lasts[k], v)
		res.putLat = append(res.putLat, time.Since(now))
	})
	return res
}

// dirSize returns the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// metricsSize returns the size of the server's /metrics, 0 when it has
// none there.
func metricsSize(ctx context.Context, client *http.Client, base string) int {
	resp, b, err := fetch(ctx, client, http.MethodGet, base+"/metrics", nil, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0
	}
	return len(b)
}

func (r *collectionsReport) rows() []reportRow {
	kib := func(f float64) string { return fmt.Sprintf("%.2f KiB", f/1024) }
	rows := []reportRow{
		{"scenario", fmt.Sprintf("collections over %s, %s", r.Transport, r.URL)},
		{"write", fmt.Sprintf("%d collections × %d records in %.1fs; errors %d", r.Collections, r.Records, r.WriteSeconds, r.WriteErrors)},
	}
	if r.Spawned {
		rows = append(rows,
			reportRow{"memory per written collection", fmt.Sprintf("%s anonymous (%s → %s)", kib(r.AnonPerWrittenBytes), mib(r.AnonBaseBytes), mib(r.AnonWrittenBytes))},
			reportRow{"data per collection", fmt.Sprintf("%s (%s in all)", kib(r.DataPerCollectionBytes), mib(uint64(r.DataBytes)))})
	}
	rows = append(rows,
		reportRow{"/metrics", fmt.Sprintf("%d bytes after the writes, %d after the commits", r.MetricsBytes, r.MetricsAfterBytes)},
		reportRow{"connect", fmt.Sprintf("%d of %d subscribers in %.1fs", r.Established, r.Subscribers, r.ConnectSeconds)})
	if cc := r.Cluster; cc != nil {
		mibs := func(vs []uint64) string {
			s := make([]string, len(vs))
			for i, v := range vs {
				s[i] = fmt.Sprintf("%.0f", float64(v)/(1<<20))
			}
			return strings.Join(s, "/") + " MiB"
		}
		datas := func(vs []int64) string {
			s := make([]string, len(vs))
			for i, v := range vs {
				s[i] = fmt.Sprintf("%.1f", float64(v)/(1<<20))
			}
			return strings.Join(s, "/") + " MiB"
		}
		rows = append(rows,
			reportRow{"node 0 per written collection", kib(cc.NodeAnonPerWritten) + " anonymous (the writer keeps it open)"},
			reportRow{liveNodes(len(cc.NodeAnon[phaseLive])) + " per live collection", kib(cc.NodeAnonPerLive) + " anonymous, opened by its subscriber"},
			reportRow{"NATS per written collection", fmt.Sprintf("%s anonymous, %s stored (3 servers together)", kib(cc.NATSAnonPerWritten), kib(cc.NATSDataPerWritten))},
			reportRow{"NATS per live collection", kib(cc.NATSAnonPerLive) + " anonymous (3 servers together: the subscribers' nodes' consumers, in the stream layout)"},
			reportRow{"viewsync nodes anonymous", fmt.Sprintf("base %s, written %s, live %s", mibs(cc.NodeAnon[phaseBase]), mibs(cc.NodeAnon[phaseWritten]), mibs(cc.NodeAnon[phaseLive]))},
			reportRow{"NATS servers anonymous", fmt.Sprintf("base %s, written %s, live %s", mibs(cc.NATSAnon[phaseBase]), mibs(cc.NATSAnon[phaseWritten]), mibs(cc.NATSAnon[phaseLive]))},
			reportRow{"NATS servers stored", fmt.Sprintf("written %s, live %s", datas(cc.NATSData[phaseWritten]), datas(cc.NATSData[phaseLive]))},
			reportRow{"NATS consumers", fmt.Sprintf("base %d, written %d, live %d (stream layout: one per collection open on a node; shared layout: one per node)", cc.NATSConsumers[phaseBase], cc.NATSConsumers[phaseWritten], cc.NATSConsumers[phaseLive])},
			reportRow{"idle CPU", fmt.Sprintf("viewsync nodes %s, NATS servers %s cores over %.0fs", msList(cc.IdleNodeCPU), msList(cc.IdleNATSCPU), cc.IdleSeconds)})
	} else if r.Spawned {
		rows = append(rows, reportRow{"memory per live collection", fmt.Sprintf("%s anonymous, with its subscriber (%s in all)", kib(r.AnonPerLiveBytes), mib(r.AnonLiveBytes))})
	}
	rows = append(rows,
		reportRow{"commits", fmt.Sprintf("%d to random collections in %.0fs (asked %.0f/s), %d failed", r.Commits, r.Seconds, r.Rate, r.Errors)},
		reportRow{"commit round trip", fmt.Sprintf("p50 %.2fms  p99 %.2fms  max %.2fms", r.CommitLatency.P50ms, r.CommitLatency.P99ms, r.CommitLatency.MaxMs)},
		reportRow{"commit → receipt", latencyRow(r.Latency)},
		reportRow{"deliveries", fmt.Sprintf("%d; missing %d, duplicated %d, catch-ups %d, reconnects %d", r.Deliveries, r.Missing, r.Duplicated, r.CatchUps, r.Reconnects)})
	if r.LastError != "" {
		rows = append(rows, reportRow{"last error", r.LastError})
	}
	return rows
}

// subscriberNodes is how many nodes of a cluster of n hold the
// subscribers, from node 1 on: node 1 of the default three (node 2 stays
// idle, for comparison), every node but node 0 of more (--nats-nodes).
func subscriberNodes(n int) int {
	if n <= clusterSize {
		return 1
	}
	return n - 1
}

// liveNodes names the nodes of a cluster of n that hold the subscribers.
func liveNodes(n int) string {
	if k := subscriberNodes(n); k > 1 {
		return fmt.Sprintf("nodes 1-%d", k)
	}
	return "node 1"
}
