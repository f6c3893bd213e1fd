package fanout

import (
	"cmp"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/protocol"
)

// view is a filtered view of a topic, shared by the subscriptions with the
// same filter: each commit of the topic that concerns it is restricted
// once, to the ops that concern it (a put of a record in the view, a
// delete of one that left it), into a frame of its own, whose encodings
// its subscribers share. Its fields are guarded by the topic's mu.
type view struct {
	f   *filter.Filter
	key string
	// refs counts subscriptions.
	refs int
	// from is where the view's history starts: every commit after from
	// that concerns the view is in frames.
	from uint64
	// frames are the restricted commits after from, oldest first.
	frames []*Frame
	// after is the After of the next frame: the version of the newest
	// frame, or from.
	after uint64
	// changed is closed and replaced when a frame is added, the history
	// restarts or the topic stops.
	changed signal
	// linger, set while the view has no subscription, ends it.
	linger *time.Timer
	// mark is the topic's routing pass that last named the view a
	// candidate.
	mark uint64
}

// viewEntry records that a frame of version v was added to a view, in the
// order frames are added to all views, so that trimming the topic's buffer
// trims the views' at the same cost.
type viewEntry struct {
	v       *view
	version uint64
}

// viewIndex finds the views a commit may concern without trying every
// view: a view whose filter requires a path to hold one of a few values
// (filter.Equalities) is indexed under its first such path and values;
// the others are scanned.
type viewIndex struct {
	// eq maps a path to its values to the views indexed there.
	eq map[string]map[string][]*view
	// paths are eq's keys, for a stable walk.
	paths []string
	scan  []*view
}

func (x *viewIndex) add(v *view) {
	eqs := v.f.Equalities()
	if len(eqs) == 0 {
		x.scan = append(x.scan, v)
		return
	}
	e := eqs[0]
	if x.eq == nil {
		x.eq = map[string]map[string][]*view{}
	}
	byValue := x.eq[e.Path]
	if byValue == nil {
		byValue = map[string][]*view{}
		x.eq[e.Path] = byValue
		x.paths = append(x.paths, e.Path)
	}
	for _, val := range e.Values {
		byValue[val] = append(byValue[val], v)
	}
}

func (x *viewIndex) remove(v *view) {
	eqs := v.f.Equalities()
	if len(eqs) == 0 {
		x.scan = removeView(x.scan, v)
		return
	}
	e := eqs[0]
	byValue := x.eq[e.Path]
	for _, val := range e.Values {
		if rest := removeView(byValue[val], v); len(rest) > 0 {
			byValue[val] = rest
		} else {
			delete(byValue, val)
		}
	}
	if len(byValue) == 0 {
		delete(x.eq, e.Path)
		for i, p := range x.paths {
			if p == e.Path {
				x.paths = append(x.paths[:i], x.paths[i+1:]...)
				break
			}
		}
	}
}

func removeView(vs []*view, v *view) []*view {
	for i, x := range vs {
		if x == v {
			vs[i] = vs[len(vs)-1]
			vs[len(vs)-1] = nil
			return vs[:len(vs)-1]
		}
	}
	return vs
}

// opDocs are an op's record before and after it, parsed once for every
// view (nil: no record).
type opDocs struct{ old, new *filter.Doc }

// viewLocked returns the topic's view of f, making it (refs 0) if there is
// none: it starts at the oldest frame of the buffer, so that subscribers
// resuming within the buffer need not read the store. t.mu must be held.
func (t *topic) viewLocked(f *filter.Filter) *view {
	key := f.Key()
	if v := t.views[key]; v != nil {
		return v
	}
	v := &view{f: f, key: key, changed: newSignal()}
	if t.views == nil {
		t.views = map[string]*view{}
	}
	t.views[key] = v
	t.index.add(v)
	if t.ready {
		v.from, v.after = t.first-1, t.first-1
		n := len(t.viewLog)
		for _, fr := range t.frames {
			t.routeTo(fr, []*view{v})
		}
		if n > 0 && len(t.viewLog) > n {
			// The view's frames are older than the newest in the log:
			// keep it in version order, as trimming reads it.
			slices.SortStableFunc(t.viewLog, func(a, b viewEntry) int { return cmp.Compare(a.version, b.version) })
		}
	}
	// Until the topic is ready, from is 0; readying it restarts the view.
	return v
}

// dropViewLocked forgets v, whose last subscription ended.
func (t *topic) dropViewLocked(v *view) {
	if t.views[v.key] != v {
		return
	}
	delete(t.views, v.key)
	t.index.remove(v)
	t.restartViewLocked(v, 0)
	v.frames = nil
}

// restartViewLocked empties v's history, its frames leaving the buffer's
// byte count, and starts it at version from.
func (t *topic) restartViewLocked(v *view, from uint64) {
	for _, f := range v.frames {
		t.bytes -= f.size()
	}
	clear(v.frames)
	v.frames = v.frames[:0]
	v.from, v.after = from, from
}

func (v *view) notify() { v.changed.fire() }

// restartViewsLocked restarts every view at version from (the buffer
// restarted there) and wakes their subscribers.
func (t *topic) restartViewsLocked(from uint64) {
	for _, v := range t.views {
		t.restartViewLocked(v, from)
		v.notify()
	}
	clear(t.viewLog)
	t.viewLog = t.viewLog[:0]
}

// routeLocked restricts frame f, just added to the buffer, for every view
// it concerns.
func (t *topic) routeLocked(f *Frame) {
	if len(t.views) > 0 {
		t.routeTo(f, nil)
	}
}

// routeTo restricts f for the views it may concern, found by the index
// (only: nil), else for only. A frame without its records' previous values
// cannot be restricted: the views' histories restart after it (every
// view's, for only nil), and their subscribers behind it read the store.
func (t *topic) routeTo(f *Frame, only []*view) {
	if !f.hasPrev() {
		if only == nil {
			only = slices.Collect(maps.Values(t.views))
		}
		for _, v := range only {
			t.restartViewLocked(v, f.Version())
			v.notify()
		}
		return
	}
	docs := make([]opDocs, len(f.Commit.Ops))
	for i, op := range f.Commit.Ops {
		if op.Op == protocol.OpPut {
			docs[i].new = filter.NewDoc(op.ID, op.Value)
		}
		if p := f.prev[i]; p != nil {
			docs[i].old = filter.NewDoc(op.ID, p)
		}
	}
	cands := only
	if cands == nil {
		cands = t.candidates(docs)
	}
	for _, v := range cands {
		ops := v.restrict(f, docs)
		if len(ops) == 0 {
			continue
		}
		vf := newViewFrame(f, ops, v.after)
		v.frames = append(v.frames, vf)
		v.after = vf.Version()
		t.bytes += vf.size()
		t.viewLog = append(t.viewLog, viewEntry{v, vf.Version()})
		v.notify()
	}
}

// candidates returns the views the ops may concern: those indexed under a
// value one of the records had or has, and those scanned.
func (t *topic) candidates(docs []opDocs) []*view {
	t.routePass++
	pass := t.routePass
	out := t.candBuf[:0]
	take := func(vs []*view) {
		for _, v := range vs {
			if v.mark != pass {
				v.mark = pass
				out = append(out, v)
			}
		}
	}
	for _, path := range t.index.paths {
		byValue := t.index.eq[path]
		for _, d := range docs {
			for _, doc := range [2]*filter.Doc{d.old, d.new} {
				if doc == nil {
					continue
				}
				if val, ok := doc.At(path); ok {
					take(byValue[val])
				}
			}
		}
	}
	take(t.index.scan)
	t.candBuf = out
	return out
}

// restrict returns the ops of f that concern v: a put of a record that is
// in the view after it, a delete of one that was in it before and is not
// after. Previous values chain within a commit, so each op is judged on
// its own.
func (v *view) restrict(f *Frame, docs []opDocs) []protocol.Op {
	var out []protocol.Op
	for i, op := range f.Commit.Ops {
		now := docs[i].new != nil && v.f.MatchDoc(docs[i].new)
		switch {
		case now:
			out = append(out, op)
		case docs[i].old != nil && v.f.MatchDoc(docs[i].old):
			out = append(out, protocol.Op{Op: protocol.OpDelete, ID: op.ID})
		}
	}
	return out
}

// trimViewsLocked drops the views' frames older than first, the oldest
// version the topic's buffer keeps, moving their history's start.
func (t *topic) trimViewsLocked(first uint64) {
	n := 0
	for n < len(t.viewLog) && t.viewLog[n].version < first {
		e := t.viewLog[n]
		n++
		v := e.v
		if len(v.frames) == 0 || v.frames[0].Version() != e.version {
			continue // the view restarted or was dropped meanwhile
		}
		t.bytes -= v.frames[0].size()
		v.frames[0] = nil
		v.frames = v.frames[1:]
		v.from = max(v.from, e.version)
		if cap(v.frames) > 2*len(v.frames)+64 {
			v.frames = append([]*Frame(nil), v.frames...)
		}
	}
	if n > 0 {
		clear(t.viewLog[:n])
		t.viewLog = t.viewLog[n:]
		if cap(t.viewLog) > 2*len(t.viewLog)+64 {
			t.viewLog = append([]viewEntry(nil), t.viewLog...)
		}
	}
}

// match reports whether a record is in the view.
func (v *view) match(r protocol.Record) bool { return v.f.Match(r.ID, r.Value) }

// framesAfter returns the view's frames after version cur.
func (v *view) framesAfter(cur uint64) []*Frame {
	i := sort.Search(len(v.frames), func(i int) bool { return v.frames[i].Version() > cur })
	return v.frames[i:]
}
