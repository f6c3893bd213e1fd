package metrics

import (
	"container/heap"
	"iter"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	versionDesc = prometheus.NewDesc("viewsync_collection_version",
		"Latest committed version per collection: the busiest collections by commits since start, and the named ones.",
		[]string{"collection"}, nil)
	writtenDesc = prometheus.NewDesc("viewsync_collections_written",
		"Collections written since start (each with a series of viewsync_collection_version or not).", nil, nil)
)

// collections keeps what the per-collection series need, and chooses the
// collections that get series of their own.
type collections struct {
	bound int
	named map[string]bool

	mu    sync.Mutex
	stats map[string]*collStat
	// hist holds the collections with a histogram series of their own:
	// the named ones and the first bound seen.
	hist map[string]bool
}

// collStat is one collection's figures.
type collStat struct {
	version, commits uint64
}

func newCollections(o Options) *collections {
	c := &collections{bound: o.Collections, named: map[string]bool{}, stats: map[string]*collStat{}, hist: map[string]bool{}}
	for _, n := range o.Named {
		c.named[n] = true
	}
	return c
}

// committed records a collection's commit.
func (c *collections) committed(collection string, version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats[collection]
	if s == nil {
		s = &collStat{}
		c.stats[collection] = s
	}
	s.version = version
	s.commits++
}

// histogramLabel returns the collection label of a histogram observation
// of collection: its own name for a named collection or one of the first
// bound seen, else Other. A histogram's series cannot come and go with
// ranks as a gauge's may: the choice is made once.
func (c *collections) histogramLabel(collection string) string {
	if c.named[collection] {
		return collection
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hist[collection] {
		return collection
	}
	if len(c.hist) < c.bound {
		c.hist[collection] = true
		return collection
	}
	return Other
}

// rest sums the values of the collections without a series of their own.
type rest struct {
	n   int
	sum uint64
}

// pick returns the collections that get a series of their own — the
// named ones present and the bound ones with the largest values — sorted,
// and the sum over the others.
func (c *collections) pick(size int, all iter.Seq2[string, uint64]) (own []string, other rest) {
	top := make(ranked, 0, min(size, c.bound))
	for coll, v := range all {
		switch {
		case c.named[coll]:
			own = append(own, coll)
		case c.bound == 0:
			other.n, other.sum = other.n+1, other.sum+v
		case len(top) < c.bound:
			heap.Push(&top, rankedColl{coll, v})
		case v > top[0].v || v == top[0].v && coll < top[0].coll:
			out := top[0]
			top[0] = rankedColl{coll, v}
			heap.Fix(&top, 0)
			other.n, other.sum = other.n+1, other.sum+out.v
		default:
			other.n, other.sum = other.n+1, other.sum+v
		}
	}
	for _, r := range top {
		own = append(own, r.coll)
	}
	slices.Sort(own)
	return own, other
}

// rankedColl is a collection and the value it is ranked by.
type rankedColl struct {
	coll string
	v    uint64
}

// ranked is a min-heap of collections by value (ties: the larger name
// first out), holding the top ones seen so far.
type ranked []rankedColl

func (r ranked) Len() int { return len(r) }
func (r ranked) Less(i, j int) bool {
	if r[i].v != r[j].v {
		return r[i].v < r[j].v
	}
	return r[i].coll > r[j].coll
}
func (r ranked) Swap(i, j int) { r[i], r[j] = r[j], r[i] }
func (r *ranked) Push(x any)   { *r = append(*r, x.(rankedColl)) }
func (r *ranked) Pop() any {
	old := *r
	x := old[len(old)-1]
	*r = old[:len(old)-1]
	return x
}

// Describe implements prometheus.Collector.
func (c *collections) Describe(ch chan<- *prometheus.Desc) {
	ch <- versionDesc
	ch <- writtenDesc
}

// Collect implements prometheus.Collector: the version of the busiest and
// the named collections, and how many were written.
func (c *collections) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	own, _ := c.pick(len(c.stats), func(yield func(string, uint64) bool) {
		for coll, s := range c.stats {
			if !yield(coll, s.commits) {
				return
			}
		}
	})
	versions := make([]uint64, len(own))
	for i, coll := range own {
		versions[i] = c.stats[coll].version
	}
	written := len(c.stats)
	c.mu.Unlock()
	for i, coll := range own {
		ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(versions[i]), coll)
	}
	ch <- prometheus.MustNewConstMetric(writtenDesc, prometheus.GaugeValue, float64(written))
}
