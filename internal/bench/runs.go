package bench

// What fanout and idle share beyond the common flags: the flags --runs,
// --loaders, --baseline and --plot, the median of the runs, and the
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

func (r *benchRunsFlags) validate() error {
	switch {
	case r.runs < 1:
		return errors.New("--runs must be at least 1")
	case r.loaders < 0:
		return errors.New("--loaders must not be negative")
	}
	return nil
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

// writeChart writes the --plot chart, when asked for, and says where.
func writeChart(path string, stderr io.Writer, chart func() (title, subtitle string, panels []plotPanel)) error {
	if path == "" {
		return nil
	}
	title, subtitle, panels := chart()
	if err := writePlot(path, title, subtitle, panels); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: chart written to %s\n", path)
	return nil
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
			if !f.IsExported() || ftag == "-" {
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

// compareRows returns the rows of a table comparing viewsync to the
// baseline: a header, then one row per figure.
func compareRows(title string, rows [][4]string) []reportRow {
	out := []reportRow{{"", ""}, {title, "viewsync\tbaseline\tratio (viewsync / baseline)"}}
	for _, r := range rows {
		out = append(out, reportRow{r[0], r[1] + "\t" + r[2] + "\t" + r[3]})
	}
	return out
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
	progress
	mu     sync.Mutex
	server []serverSample
}

// startMonitor starts the progress line of subscribers spread over groups,
// total of them, while a writer counts its commits in sent.
func startMonitor(w io.Writer, label string, t *benchTarget, groups []subGroup, total int, sent *atomic.Int64) *monitor {
	m := &monitor{progress: progress{done: make(chan struct{})}}
	start := time.Now()
	m.wg.Go(func() {
		prev, cpuErr := t.serverStats()
		prevAt := start
		var prevDeliveries int64
		for n := 1; ; n++ {
			next := time.Now().Truncate(tickEvery).Add(tickEvery)
			timer := time.NewTimer(time.Until(next))
			select {
			case <-m.done:
				timer.Stop()
				return
			case <-timer.C:
			}
			st, err := t.serverStats()
			if err == nil {
				m.mu.Lock()
				m.server = append(m.server, serverSample{slot: slotOf(next), cpu: st.cpu, rss: st.rss})
				m.mu.Unlock()
			}
			if n%int(time.Second/tickEvery) != 0 {
				continue
			}
			var sum groupTick
			for _, g := range groups {
				tk := g.status()
				sum.Connected += tk.Connected
				sum.Deliveries += tk.Deliveries
				sum.CatchUps += tk.CatchUps
				sum.Errors += tk.Errors
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
		}
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
