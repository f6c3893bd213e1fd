package bench

import (
	"math"
	"slices"
	"time"
)

// latHist is a histogram of latencies in buckets 1% wide, the form in
// which loader processes report theirs: percentiles read from it are
// within 1% of the exact ones.
type latHist struct {
	// Buckets counts the latencies by bucket: bucket i holds those of
	// [e^(i/histScale), e^((i+1)/histScale)) ns.
	Buckets map[int]int64 `json:"buckets"`
	Count   int64         `json:"count"`
	MinNS   int64         `json:"min_ns"`
	MaxNS   int64         `json:"max_ns"`
}

// histScale makes the buckets 1% wide.
var histScale = 1 / math.Log(1.01)

func histIndex(ns int64) int { return int(math.Floor(math.Log(float64(max(ns, 1))) * histScale)) }

// histMid is the middle of bucket i, in ns.
func histMid(i int) float64 { return math.Exp((float64(i) + 0.5) / histScale) }

func histOf(samples []time.Duration) *latHist {
	h := &latHist{}
	for _, d := range samples {
		h.add(int64(d))
	}
	return h
}

func (h *latHist) add(ns int64) {
	ns = max(ns, 1)
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	h.Buckets[histIndex(ns)]++
	if h.Count == 0 || ns < h.MinNS {
		h.MinNS = ns
	}
	h.MaxNS = max(h.MaxNS, ns)
	h.Count++
}

func (h *latHist) merge(o *latHist) {
	if o == nil || o.Count == 0 {
		return
	}
	if h.Buckets == nil {
		h.Buckets = map[int]int64{}
	}
	for i, n := range o.Buckets {
		h.Buckets[i] += n
	}
	if h.Count == 0 || o.MinNS < h.MinNS {
		h.MinNS = o.MinNS
	}
	h.MaxNS = max(h.MaxNS, o.MaxNS)
	h.Count += o.Count
}

// percentile returns the p-th percentile by the nearest-rank method, in
// ns: the middle of its bucket, within the smallest and largest latency.
func (h *latHist) percentile(p float64) float64 {
	if h == nil || h.Count == 0 {
		return 0
	}
	if p >= 100 {
		return float64(h.MaxNS)
	}
	rank := max(int64(math.Ceil(p/100*float64(h.Count))), 1)
	keys := make([]int, 0, len(h.Buckets))
	for i := range h.Buckets {
		keys = append(keys, i)
	}
	slices.Sort(keys)
	var seen int64
	for _, i := range keys {
		seen += h.Buckets[i]
		if seen >= rank {
			return min(max(histMid(i), float64(h.MinNS)), float64(h.MaxNS))
		}
	}
	return float64(h.MaxNS)
}

func (h *latHist) summary() latencySummary {
	ms := func(ns float64) float64 { return math.Round(ns/1e3) / 1e3 }
	if h == nil || h.Count == 0 {
		return latencySummary{}
	}
	return latencySummary{Samples: int(h.Count), P50ms: ms(h.percentile(50)), P90ms: ms(h.percentile(90)),
		P99ms: ms(h.percentile(99)), MaxMs: ms(float64(h.MaxNS))}
}
