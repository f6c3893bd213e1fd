package bench

// What fanout and idle share beyond the common flags: the flags --runs,
// --loaders, --baseline and --plot, the runs and their median, the
// comparison with the baseline, the subscribers of a run and their
// progress line with the server samples.
//
// Every run (and every baseline run) has a server of its own: with
// --spawn a fresh 'viewsync serve' on a fresh data directory, with
// --baseline a fresh raw broadcaster, so that each starts from the same
// state (the memory figures need a fresh process). With --url every run
// loads that same server. With --baseline the runs alternate, viewsync
// then baseline, so that a machine whose load drifts weighs on both alike.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchRunsFlags are the flags of fanout and idle on how to measure.
type benchRunsFlags struct {
	runs     int
	loaders  int
	baseline bool
	plot     string
}

func (r *benchRunsFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&r.runs, "runs", 1, "measure this many times, each against a fresh spawned server (with --url: the same server), and report the median of each figure (min and max in --json)")
	fs.IntVar(&r.loaders, "loaders", 0, "processes holding the subscribers' connections: 1 is this one; 0 chooses: 1 when they fit well in the open-files limit, else enough loader processes (this executable again) that each holds at most 15000")
	fs.BoolVar(&r.baseline, "baseline", false, "also measure, in the same run and the same way, a minimal raw broadcaster (pre-encoded frames, no store) spawned as the machine's ceiling, and print each figure also as a ratio to it")
	fs.StringVar(&r.plot, "plot", "", "write an SVG chart of the run to this file (.svg)")
}

// checks returns the rules of the flags.
func (r *benchRunsFlags) checks() []check {
	return []check{{r.runs < 1, "--runs must be at least 1"}, {r.loaders < 0, "--loaders must not be negative"}}
}

// measurement names one measured run.
type measurement struct {
	baseline bool
	// run counts from 1, of runs.
	run, runs int
	loaders   int
}

// label prefixes the progress lines when there is more than one
// measurement.
func (m measurement) label(withBaseline bool) string {
	s := ""
	if withBaseline {
		s = "viewsync "
		if m.baseline {
			s = "baseline "
		}
	}
	if m.runs > 1 {
		s += fmt.Sprintf("run %d/%d ", m.run, m.runs)
	}
	return s
}

// measureRuns measures --runs times, each run of viewsync followed, with
// --baseline, by one of the raw broadcaster, and returns the reports of
// each, the runs' traces in order, and the problems once reported, each
// prefixed with the label of its measurement.
func measureRuns[R any](ctx context.Context, meas benchRunsFlags, loaders int,
	once func(measurement) (rep R, tr *runTrace, problems []string, err error)) (reps, bases []R, traces []*runTrace, problems []string, err error) {
	for run := 1; run <= meas.runs; run++ {
		for _, baseline := range []bool{false, true} {
			if baseline && !meas.baseline {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, nil, nil, nil, err
			}
			m := measurement{baseline: baseline, run: run, runs: meas.runs, loaders: loaders}
			rep, tr, ps, err := once(m)
			if err != nil {
				return nil, nil, nil, nil, err
			}
			traces = append(traces, tr)
			for _, p := range ps {
				problems = append(problems, m.label(meas.baseline)+p)
			}
			if baseline {
				bases = append(bases, rep)
			} else {
				reps = append(reps, rep)
			}
		}
	}
	return reps, bases, traces, problems, nil
}

// runsOf is what a report R of fanout or idle says of its runs and of
// the baseline, with Q the ratios of its figures to the baseline's.
type runsOf[R, Q any] struct {
	// Runs is how many times it was measured: the figures are the medians
	// of the runs' (the counts of problems their sums), Min and Max (with
	// more than one run) the least and the greatest.
	Runs int `json:"runs"`
	Min  *R  `json:"min,omitempty"`
	Max  *R  `json:"max,omitempty"`
	// Loaders is how many processes held the subscribers' connections.
	Loaders int `json:"loaders"`
	// Baseline is the same measurement of the raw broadcaster (--baseline)
	// and Ratio each figure over the baseline's.
	Baseline *R `json:"baseline,omitempty"`
	Ratio    *Q `json:"ratio_to_baseline,omitempty"`
}

// measured returns what the report says of its runs.
func (m *runsOf[R, Q]) measured() *runsOf[R, Q] { return m }

// measuredReport is a report of fanout or idle, R, whose ratios to the
// baseline's are Q.
type measuredReport[R, Q any] interface {
	*R
	measured() *runsOf[R, Q]
	rows() []reportRow
}

// runMeasured measures the runs of fanout or idle, each of conns
// connections, by once; aggregates them, with the ratios of figs to the
// baseline's; writes the chart (--plot) that chart makes of the report and
// the runs' traces; prints the report; and returns the problems the runs
// had, joined by sep, as an error.
func runMeasured[R, Q any, P measuredReport[R, Q]](ctx context.Context, c *benchCommon, meas benchRunsFlags, conns int,
	once func(measurement) (P, *runTrace, []string, error), chart func(P, []*runTrace) (string, string, []plotPanel),
	figs []figure[R, Q], sep string, stdout, stderr io.Writer) error {
	loaders := chooseLoaders(meas.loaders, conns)
	reps, bases, traces, problems, err := measureRuns(ctx, meas, loaders, once)
	if err != nil {
		return err
	}
	rep := aggregateRuns[R, Q, P](reps, meas.runs, loaders)
	if meas.baseline {
		base := aggregateRuns[R, Q, P](bases, meas.runs, loaders)
		rep.measured().Baseline, rep.measured().Ratio = base, ratios(figs, rep, base)
	}
	if meas.plot != "" {
		title, subtitle, panels := chart(rep, traces)
		if err := writePlot(meas.plot, title, subtitle, panels); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: chart written to %s\n", meas.plot)
	}
	if err := printReport(stdout, c.json, rep, rep.rows()); err != nil {
		return err
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, sep))
	}
	return nil
}

// aggregateRuns returns the median of the runs' reports, with their least
// and greatest figures when there is more than one.
func aggregateRuns[R, Q any, P measuredReport[R, Q]](reps []P, runs, loaders int) P {
	ptrs := make([]*R, len(reps))
	for i, r := range reps {
		ptrs[i] = r
	}
	med, lo, hi := aggregate(ptrs)
	m := P(med).measured()
	m.Runs, m.Loaders = runs, loaders
	if len(reps) > 1 {
		m.Min, m.Max = lo, hi
	}
	return med
}

// figure is one line of the comparison of a report R with the baseline's:
// a figure, its unit, and where its ratio goes in the ratios Q.
type figure[R, Q any] struct {
	name string
	get  func(*R) float64
	unit func(float64) string
	set  func(*Q, float64)
}

// ratios returns r's figures over base's.
func ratios[R, Q any](figs []figure[R, Q], r, base *R) *Q {
	q := new(Q)
	for _, f := range figs {
		f.set(q, ratio(f.get(r), f.get(base)))
	}
	return q
}

// compareRows returns the rows of the table comparing r to base, the
// baseline's: a header, then one row per figure.
func compareRows[R, Q any](figs []figure[R, Q], r, base *R) []reportRow {
	out := []reportRow{{"", ""}, {"vs baseline", "viewsync\tbaseline\tratio (viewsync / baseline)"}}
	for _, f := range figs {
		v, bv := f.get(r), f.get(base)
		out = append(out, reportRow{f.name, f.unit(v) + "\t" + f.unit(bv) + "\t" + ratioText(ratio(v, bv))})
	}
	return out
}

// aggregate returns, field by field, the median, the least and the
// greatest of the runs' reports. Numbers are aggregated so, except fields
// tagged runs:"sum" (counts of problems: the median is their sum over the
// runs); strings, booleans and numbers tagged runs:"first" are the first
// run's (runs:"last": the last non-empty); fields tagged runs:"-" are left
// out. Structs and pointers to them are aggregated field by field.
func aggregate[T any](runs []*T) (med, lo, hi *T) {
	med, lo, hi = new(T), new(T), new(T)
	vals := make([]reflect.Value, len(runs))
	for i, r := range runs {
		vals[i] = reflect.ValueOf(r).Elem()
	}
	aggValue(reflect.ValueOf(med).Elem(), reflect.ValueOf(lo).Elem(), reflect.ValueOf(hi).Elem(), vals, "")
	return med, lo, hi
}

func aggValue(med, lo, hi reflect.Value, vals []reflect.Value, tag string) {
	if len(vals) == 0 {
		return
	}
	switch med.Kind() {
	case reflect.Struct:
		for i := range med.NumField() {
			f := med.Type().Field(i)
			ftag := f.Tag.Get("runs")
			if (!f.IsExported() && !f.Anonymous) || ftag == "-" {
				continue
			}
			sub := make([]reflect.Value, len(vals))
			for j, v := range vals {
				sub[j] = v.Field(i)
			}
			aggValue(med.Field(i), lo.Field(i), hi.Field(i), sub, ftag)
		}
		return
	case reflect.Pointer:
		var sub []reflect.Value
		for _, v := range vals {
			if !v.IsNil() {
				sub = append(sub, v.Elem())
			}
		}
		if len(sub) == 0 || med.Type().Elem().Kind() != reflect.Struct {
			med.Set(vals[0])
			lo.Set(vals[0])
			hi.Set(vals[0])
			return
		}
		for _, p := range []reflect.Value{med, lo, hi} {
			p.Set(reflect.New(med.Type().Elem()))
		}
		aggValue(med.Elem(), lo.Elem(), hi.Elem(), sub, tag)
		return
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		if tag == "first" {
			break
		}
		fs := make([]float64, len(vals))
		for i, v := range vals {
			fs[i] = numOf(v)
		}
		m := median(fs)
		if tag == "sum" {
			m = 0
			for _, f := range fs {
				m += f
			}
		}
		setNum(med, m)
		setNum(lo, slices.Min(fs))
		setNum(hi, slices.Max(fs))
		return
	case reflect.String:
		if tag == "last" {
			for _, v := range vals {
				if v.String() != "" {
					med.Set(v)
				}
			}
			lo.Set(med)
			hi.Set(med)
			return
		}
	}
	med.Set(vals[0])
	lo.Set(vals[0])
	hi.Set(vals[0])
}

func numOf(v reflect.Value) float64 {
	switch {
	case v.CanInt():
		return float64(v.Int())
	case v.CanUint():
		return float64(v.Uint())
	}
	return v.Float()
}

func setNum(v reflect.Value, f float64) {
	switch {
	case v.CanInt():
		v.SetInt(int64(math.Round(f)))
	case v.CanUint():
		v.SetUint(uint64(math.Round(max(f, 0))))
	default:
		v.SetFloat(f)
	}
}

// median returns the median of fs: for an even count, the mean of the
// middle two.
func median(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := slices.Clone(fs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio returns a over b rounded, or 0 when b is not positive (no figure
// to compare with).
func ratio(a, b float64) float64 {
	if b <= 0 || math.IsNaN(a) || math.IsInf(a, 0) {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

// ratioText formats a ratio for the table.
func ratioText(r float64) string {
	if r == 0 {
		return "n/a"
	}
	return fmt.Sprintf("×%.3g", r)
}

// serverSample is the spawned server's figures at the end of a slot.
type serverSample struct {
	slot int64
	cpu  time.Duration
	rss  uint64
}

// monitor prints the progress line every second and samples the server at
// every slot.
type monitor struct {
	*periodic
	mu     sync.Mutex
	server []serverSample
}

// startMonitor starts the progress line of subscribers spread over groups,
// total of them, while a writer counts its commits in sent.
func startMonitor(w io.Writer, label string, t *benchTarget, groups []subGroup, total int, sent *atomic.Int64) *monitor {
	m := &monitor{}
	start := time.Now()
	prev, cpuErr := t.serverStats()
	prevAt := start
	var prevDeliveries int64
	n := 0
	m.periodic = startEverySlot(func(end time.Time) {
		st, err := t.serverStats()
		if err == nil {
			m.mu.Lock()
			m.server = append(m.server, serverSample{slot: slotOf(end), cpu: st.cpu, rss: st.rss})
			m.mu.Unlock()
		}
		if n++; n%int(time.Second/tickEvery) != 0 {
			return
		}
		var sum groupTick
		for _, g := range groups {
			sum.add(g.status())
		}
		now := time.Now()
		line := fmt.Sprintf("bench: %s%4.0fs  connected %d/%d  commits %d  deliveries %d (%.0f/s)  catch-ups %d  errors %d",
			label, now.Sub(start).Seconds(), sum.Connected, total, sent.Load(), sum.Deliveries,
			float64(sum.Deliveries-prevDeliveries)/now.Sub(prevAt).Seconds(), sum.CatchUps, sum.Errors)
		if cpuErr == nil && err == nil {
			line += fmt.Sprintf("  server CPU %.0f%% RSS %s", 100*(st.cpu-prev.cpu).Seconds()/now.Sub(prevAt).Seconds(), mib(st.rss))
			prev = st
		}
		fmt.Fprintln(w, line)
		prevDeliveries, prevAt = sum.Deliveries, now
	})
	return m
}

// samples returns the server samples so far.
func (m *monitor) samples() []serverSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.server)
}

// runTrace is what the plot shows of one measured run.
type runTrace struct {
	measurement
	// start is the writer's start (fanout) or the subscribers' (idle);
	// end the end of the measured window.
	start, end time.Time
	hist       *latHist
	ticks      []groupTick
	server     []serverSample
}

// runLoad is the subscribers of one measured run, spread over groups, and
// their progress line.
type runLoad struct {
	groups []subGroup
	mon    *monitor
	// sent counts the writer's commits, for the progress line.
	sent atomic.Int64
}

// startLoad starts n subscribers to t for the measurement m, and their
// progress line, then waits until they are connected, up to
// --setup-timeout. It returns how many are, and the seconds since start.
// record says whether to keep their latencies.
func startLoad(ctx context.Context, t *benchTarget, c *benchCommon, meas benchRunsFlags, m measurement, n int, record bool,
	start time.Time, stderr io.Writer) (l *runLoad, established int, setupSeconds float64, err error) {
	groups, err := startGroups(ctx, t, c, n, m.loaders, record, stderr)
	if err != nil {
		return nil, 0, 0, err
	}
	l = &runLoad{groups: groups}
	l.mon = startMonitor(stderr, m.label(meas.baseline), t, groups, n, &l.sent)
	established, setupSeconds = waitGroups(ctx, groups, c.setupTimeout, start)
	return l, established, setupSeconds, nil
}

// stop ends the subscribers and their progress line; it may be called
// more than once, and after finish.
func (l *runLoad) stop() {
	l.mon.stop()
	for _, g := range l.groups {
		g.kill()
	}
}

// finish ends the progress line and the subscribers, and returns what
// they saw and the trace of the run m, measured from start to end.
func (l *runLoad) finish(m measurement, start, end time.Time) (*groupResult, *runTrace, error) {
	l.mon.stop()
	res, err := finishGroups(l.groups)
	if err != nil {
		return nil, nil, err
	}
	tr := &runTrace{measurement: m, start: start, end: end, hist: res.Latency, ticks: mergeTicks(l.groups), server: l.mon.samples()}
	return res, tr, nil
}
