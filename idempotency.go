package viewsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/store"
)

// Idempotency keys.
//
// A client that may retry a write or a call — after a lost answer, from a
// durable outbox — sends an idempotency key with it. Every transport hands
// the keyed request to Hub.Once, the one place where the rule lives:
//
//   - a key is scoped by principal and target (Once.Scope, Once.Target):
//     one principal never sees another's answers;
//   - a retry of the same request (Once.Fingerprint) gets the first
//     answer back, and nothing is applied again; another request under
//     the same key gets ErrKeyReused (422);
//   - a duplicate that comes while the first still runs waits for it and
//     gets its answer, or, when its time runs out, ErrKeyInFlight (409);
//   - results are remembered (2xx, and 4xx such as a failed
//     precondition); 5xx answers and unknown outcomes are not: a retry
//     runs again.
//
// Answers are remembered in memory (an idem.Table, bounded by
// WithIdempotency). A keyed write also records its key and answer in the
// store, in the same atomic, durable step as its commit (store.Keys):
// a retry after a crash that came between the commit and its answer, or
// sent to another process sharing the store, finds it there.

// IdempotencyOptions bound the answers the hub keeps in memory for
// idempotency keys, and the keys clients may send: see idem.Options. The
// store's keys are bounded by its own store.Config (KeyTTL, MaxKeys).
type IdempotencyOptions = idem.Options

// Answer is what a keyed request was answered: see idem.Answer.
type Answer = idem.Answer

// Errors of Hub.Once, matched with errors.Is.
var (
	// ErrBadIdempotencyKey: a key that is empty, too long or not
	// printable ASCII (400 bad_idempotency_key).
	ErrBadIdempotencyKey = idem.ErrBadKey
	// ErrKeyReused: the key was used with another request (422
	// idempotency_key_reused).
	ErrKeyReused = idem.ErrKeyReused
	// ErrKeyInFlight: the key's first request still runs (409
	// idempotency_in_flight).
	ErrKeyInFlight = idem.ErrInFlight
)

// WithIdempotency sets how long, and how many, answers of keyed requests
// the hub keeps in memory, and the longest key it takes. Zero fields keep
// their defaults (24h, 100,000 answers, 64 MiB, 255 bytes).
func WithIdempotency(o IdempotencyOptions) Option {
	return func(opts *options) error {
		if o.TTL < 0 || o.MaxKeys < 0 || o.MaxBytes < 0 || o.MaxWait < 0 || o.MaxKeyBytes < 0 {
			return errors.New("viewsync: negative idempotency option")
		}
		opts.idem = o
		return nil
	}
}

// ParseIdempotencyKey checks a key as a client sent it (idem.ParseKey,
// within the hub's MaxKeyBytes). A bad key fails with an error matching
// ErrBadIdempotencyKey.
func (h *Hub) ParseIdempotencyKey(key string) (string, error) {
	return idem.ParseKey(key, h.idem.Options().MaxKeyBytes)
}

// IdempotencyKeys returns how many answers of keyed requests the hub
// keeps in memory.
func (h *Hub) IdempotencyKeys() int { return h.idem.Len() }

// Once describes a keyed request for Hub.Once.
type Once struct {
	// Scope is whose key it is: idem.Scope of the principal.
	Scope string
	// Key is the key the client sent, checked by ParseIdempotencyKey.
	Key string
	// Target names what the request acts on, such as
	// "record products/p1" or "commit products": one key names one
	// target.
	Target string
	// Fingerprint identifies the request (idem.Fingerprint of its kind,
	// target, preconditions and body): a retry must bring the same.
	Fingerprint string
	// Collection is the collection a keyed write records its key in,
	// with its commit; empty for a call, whose answer is kept in memory
	// only (its handler's writes are keyed each: callkeys.go).
	Collection string

	call bool // made by OnceCall
}

// Keyed is handed to the function Hub.Once runs. A write made with
// Keyed.Record records the key, and the answer, with its commit.
type Keyed struct {
	id, fp string
	// recorded is set when the store answered that the key was recorded
	// already (by a concurrent writer on another process, say).
	recorded *store.Key
}

// Record returns the option that makes a write (Put, Patch, Delete,
// Commit) record the key with its commit, with the answer render makes
// of the commit. render is called inside the store's write: it must be
// quick and must not call the hub; its answer must be the one the
// request is then given.
func (k *Keyed) Record(render func(Commit) Answer) WriteOption {
	return func(o *writeOpts) {
		o.key = &store.NewKey{ID: k.id, Fingerprint: k.fp, Answer: func(a store.Applied) []byte {
			b, _ := render(a.Commit).AppendBinary(nil)
			return b
		}}
		o.keyed = k
	}
}

// Once runs do at most once for the key of o: a retry of the same request
// gets the answer do gave the first time, with replayed true; another
// request under the key, ErrKeyReused; a duplicate while the first is in
// flight waits for it (up to ctx, or IdempotencyOptions.MaxWait), then
// ErrKeyInFlight. An error of do is returned as it is, and nothing is
// remembered. do answers both successes and failures (the transport
// renders them); whether an answer is remembered is the rule's:
// idem.Remembered of its status.
func (h *Hub) Once(ctx context.Context, o Once, do func(ctx context.Context, k *Keyed) (Answer, error)) (ans Answer, replayed bool, err error) {
	if _, err := h.ParseIdempotencyKey(o.Key); err != nil {
		return Answer{}, false, err
	}
	id := idem.ID(o.Scope, o.Target, o.Key)
	ks, durable := h.store.(store.Keys)
	durable = durable && o.Collection != ""
	return h.idem.Do(ctx, id, o.Fingerprint, func(ctx context.Context) (idem.Outcome, error) {
		if durable {
			k, err := ks.Key(ctx, o.Collection, id)
			if err == nil {
				return recorded(k)
			}
			if !errors.Is(err, store.ErrNotFound) {
				return idem.Outcome{}, err
			}
		}
		kd := &Keyed{id: id, fp: o.Fingerprint}
		if o.call {
			ctx = withCallKey(ctx, id)
		}
		ans, err := do(ctx, kd)
		if kd.recorded != nil {
			return recorded(*kd.recorded)
		}
		if err != nil {
			return idem.Outcome{}, err
		}
		return idem.Outcome{Answer: ans}, nil
	})
}

// recorded is the outcome of a key found in the store.
func recorded(k store.Key) (idem.Outcome, error) {
	a, err := idem.ParseAnswer(k.Answer)
	if err != nil {
		return idem.Outcome{}, fmt.Errorf("viewsync: idempotency key %s: %w", k.ID, err)
	}
	return idem.Outcome{Answer: a, Recorded: true, Fingerprint: k.Fingerprint, At: k.At}, nil
}

// The targets and fingerprints of keyed requests. Every transport builds
// its Once with these, so that a request has one fingerprint however it
// came: a commit retried over HTTP after it was sent over the WebSocket,
// or a call, is the same request. Values are compared compacted.

// OnceRecord is the Once of a single-record write: method (PUT, PATCH,
// DELETE) on record id of collection, with the preconditions as the
// client sent them (If-Match, If-None-Match; empty when none) and the
// body (empty for a delete).
func OnceRecord(scope, key, method, collection, id, ifMatch, ifNoneMatch string, body []byte) Once {
	target := "record " + collection + "/" + id
	return Once{
		Scope: scope, Key: key, Target: target, Collection: collection,
		Fingerprint: idem.Fingerprint([]byte(method), []byte(target), []byte(ifMatch), []byte(ifNoneMatch), compactJSON(body)),
	}
}

// OnceCommit is the Once of a commit of ops to collection under ifs.
func OnceCommit(scope, key, collection string, ops []Op, ifs map[string]uint64) Once {
	target := "commit " + collection
	b := make([]byte, 0, 64)
	for _, op := range ops {
		b = strconv.AppendQuote(b, string(op.Op))
		b = strconv.AppendQuote(b, op.ID)
		b = append(b, compactJSON(op.Value)...)
		b = append(b, '\n')
	}
	b = append(b, 0)
	for _, id := range slices.Sorted(maps.Keys(ifs)) {
		b = strconv.AppendQuote(b, id)
		b = strconv.AppendUint(b, ifs[id], 10)
		b = append(b, '\n')
	}
	return Once{
		Scope: scope, Key: key, Target: target, Collection: collection,
		Fingerprint: idem.Fingerprint([]byte("commit"), []byte(target), b),
	}
}

// OnceCall is the Once of the call name with arg.
func OnceCall(scope, key, name string, arg json.RawMessage) Once {
	target := "call " + name
	if len(arg) == 0 {
		arg = json.RawMessage("null")
	}
	return Once{
		Scope: scope, Key: key, Target: target, call: true,
		Fingerprint: idem.Fingerprint([]byte("call"), []byte(target), compactJSON(arg)),
	}
}

// compactJSON returns b compacted, or as it is when it is not JSON.
func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}

// CommitAnswer is the answer to a commit, {"version":V}, over HTTP and the
// WebSocket alike (whose result it is).
func CommitAnswer(cm Commit) Answer {
	b := strconv.AppendUint([]byte(`{"version":`), cm.Version, 10)
	return Answer{Status: http.StatusOK, Body: append(b, '}')}
}
