package viewsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/store"
)

// Keyed calls' writes.
//
// A call sent with an idempotency key keeps its answer in the memory of
// the node that ran it. A retry that finds none there (the node crashed
// while the handler ran, or restarted, or the retry went to another node)
// runs the handler again. So that its writes are not made twice, each
// commit a keyed call's handler makes through Call.Collection is keyed
// itself and recorded with the commit in the store (store.Keys), as a
// keyed PUT is: by the call's key, the collection, the ids the commit
// writes, and how many commits to those ids the handler made before it in
// this run. When the handler runs again, its commit to the same ids at
// the same place finds the first run's key, applies nothing, and returns
// what that commit made: the record a Put wrote, the version a Delete or
// Commit produced. A failed commit (a precondition, say) counts for
// nothing, so a handler that re-reads and tries again meets the first
// run's commit too. A handler whose commits to each record come in one
// order thus has its effects once however often it runs, even when what
// it reads (what the first run wrote) sends it down another path; the
// call's versions are those of the first run's commits.

// callKeyCtx carries the key of a call run by Hub.Once (idem.ID of the
// principal's scope, the call and the client's key) to Hub.Call.
type callKeyCtx struct{}

// withCallKey returns ctx carrying id, the key a call runs under.
func withCallKey(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, callKeyCtx{}, id)
}

// callKeyFrom returns the key a call runs under, "" for none.
func callKeyFrom(ctx context.Context) string {
	id, _ := ctx.Value(callKeyCtx{}).(string)
	return id
}

// callWriteFingerprint is the fingerprint of every keyed call's write: a
// write's key is judged by its place in the handler, not by its content,
// so that a run of the handler that computes another value (a counter
// read after the first run incremented it) still meets the first run's
// write.
var callWriteFingerprint = idem.Fingerprint([]byte("call write"))

// callWrite is what a keyed call's write records with its commit: the
// version it produced and, for a single-record write, the op.
type callWrite struct {
	Version uint64 `json:"version"`
	Op      *Op    `json:"op,omitempty"`
}

// writeKey returns the option that keys a commit of ops to collection
// made by the call's handler, and done, which the commit calls once made
// or found made; ok is false when the call runs without a key (or there is
// no call).
func (c *Call) writeKey(collection string, ops []Op) (opt WriteOption, done func(), ok bool) {
	if c == nil || c.key == "" {
		return nil, nil, false
	}
	var target strings.Builder
	target.WriteString(collection)
	for _, op := range ops {
		target.WriteByte(0)
		target.WriteString(op.ID)
	}
	t := target.String()
	c.mu.Lock()
	n := c.writes[t]
	c.mu.Unlock()
	k := &store.NewKey{
		ID:          idem.ID(c.key, "call write", t+"\x00"+strconv.Itoa(n)),
		Fingerprint: callWriteFingerprint,
		Answer: func(a store.Applied) []byte {
			w := callWrite{Version: a.Commit.Version}
			if len(a.Commit.Ops) == 1 {
				w.Op = &a.Commit.Ops[0]
			}
			b, _ := json.Marshal(w)
			return b
		},
	}
	done = func() {
		c.mu.Lock()
		c.writes[t]++
		c.mu.Unlock()
	}
	return func(o *writeOpts) { o.key, o.callWrite = k, true }, done, true
}

// recordedCallWrite returns the commit a keyed call's write made when
// its handler ran before: the recorded version and op, or ops (this
// run's) for a write of several records.
func recordedCallWrite(k store.Key, ops []Op) (Commit, error) {
	var w callWrite
	if err := json.Unmarshal(k.Answer, &w); err != nil || w.Version == 0 {
		return Commit{}, fmt.Errorf("viewsync: call write recorded under key %s: unreadable answer %q", k.ID, k.Answer)
	}
	cm := Commit{Version: w.Version, At: k.At, Ops: ops}
	if w.Op != nil {
		cm.Ops = []Op{*w.Op}
	}
	return cm, nil
}
