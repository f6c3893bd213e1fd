package idem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Options configure a Table. The zero value means the defaults.
type Options struct {
	// TTL is how long an answer is kept. Default DefaultTTL.
	TTL time.Duration
	// MaxKeys bounds the answers kept; past it the oldest are forgotten.
	// Default DefaultMaxKeys.
	MaxKeys int
	// MaxBytes bounds the bytes of the answers kept (their bodies, plus
	// 64 each); past it the oldest are forgotten. Default
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxWait bounds how long a duplicate waits for the request in
	// flight with its key, when its context does not end sooner.
	// Default DefaultMaxWait.
	MaxWait time.Duration
	// MaxKeyBytes bounds a key as clients send it (ParseKey). Default
	// DefaultMaxKeyBytes.
	MaxKeyBytes int
	// Now returns the time; default time.Now. Tests inject a clock.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultTTL      = 24 * time.Hour
	DefaultMaxKeys  = 100_000
	DefaultMaxBytes = 64 << 20
	DefaultMaxWait  = 30 * time.Second
)

// WithDefaults returns o with its zero fields set to the defaults.
func (o Options) WithDefaults() Options {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxKeyBytes <= 0 {
		o.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Errors of Do.
var (
	// ErrKeyReused: the key was used with another request (422
	// idempotency_key_reused).
	ErrKeyReused = errors.New("idempotency key reused with a different request")
	// ErrInFlight: a request with the key is still running and the
	// duplicate's time ran out waiting for it (409
	// idempotency_in_flight).
	ErrInFlight = errors.New("a request with this idempotency key is still in flight")
)

// Outcome is what the function given to Do produced.
type Outcome struct {
	// Answer is the answer.
	Answer Answer
	// Recorded is set when Answer was not made now but found recorded
	// (in the store, with its commit) for an earlier request whose
	// fingerprint is Fingerprint, made At: a replay.
	Recorded    bool
	Fingerprint string
	At          time.Time
}

// Table remembers the answers of keyed requests in memory and holds
// duplicates while the first runs. It is safe for concurrent use. Expired
// answers are swept a few at a time as new ones come, oldest first: no
// timer or goroutine per key.
type Table struct {
	o Options

	// mu guards the fields below; it is never held while running or
	// waiting.
	mu sync.Mutex
	m  map[string]*entry
	// q holds the remembered entries, oldest first; removed ones are
	// marked gone and skipped.
	q     []*entry
	bytes int64
	kept  int
}

// entry is one key: in flight until done is closed, then immutable.
type entry struct {
	id   string
	done chan struct{}

	// Set before done is closed.
	fp       string
	ans      Answer
	answered bool // false: the run failed without an answer
	expires  time.Time
	// kept (under Table.mu): remembered and counted; gone: removed.
	kept, gone bool
}

// New returns an empty table.
func New(o Options) *Table {
	return &Table{o: o.WithDefaults(), m: make(map[string]*entry)}
}

// Options returns the options in force.
func (t *Table) Options() Options { return t.o }

// Do answers the request with key id and fingerprint fp. A remembered
// answer for id is replayed (replayed true) when fp matches, else
// ErrKeyReused. A request with id in flight is waited for (up to ctx or
// MaxWait, then ErrInFlight), and its answer taken the same way. Else
// run runs, and its answer is kept when it is a result (Remembered) or a
// recorded one. An error of run is returned as it is and nothing is
// kept: a duplicate waiting runs again.
func (t *Table) Do(ctx context.Context, id, fp string, run func(ctx context.Context) (Outcome, error)) (ans Answer, replayed bool, err error) {
	var wait <-chan time.Time
	for {
		t.mu.Lock()
		e := t.m[id]
		if e != nil && e.kept && !t.o.Now().Before(e.expires) {
			t.removeLocked(id, e)
			e = nil
		}
		if e == nil {
			e = &entry{id: id, done: make(chan struct{})}
			t.m[id] = e
			t.mu.Unlock()
			return t.run(ctx, id, fp, e, run)
		}
		t.mu.Unlock()
		select {
		case <-e.done:
		default:
			if wait == nil {
				tm := time.NewTimer(t.o.MaxWait)
				defer tm.Stop()
				wait = tm.C
			}
			select {
			case <-e.done:
			case <-ctx.Done():
				return Answer{}, false, fmt.Errorf("%w: %w", ErrInFlight, ctx.Err())
			case <-wait:
				return Answer{}, false, fmt.Errorf("%w (waited %s)", ErrInFlight, t.o.MaxWait)
			}
		}
		if !e.answered {
			continue // the first failed: run again
		}
		if e.fp != fp {
			return Answer{}, false, ErrKeyReused
		}
		return e.ans, true, nil
	}
}

// run runs the request of the new entry e and settles it.
func (t *Table) run(ctx context.Context, id, fp string, e *entry, run func(ctx context.Context) (Outcome, error)) (ans Answer, replayed bool, err error) {
	settled := false
	defer func() {
		if !settled { // run panicked: let the others run
			t.mu.Lock()
			t.removeLocked(id, e)
			t.mu.Unlock()
			close(e.done)
		}
	}()
	out, err := run(ctx)
	now := t.o.Now()
	t.mu.Lock()
	settled = true
	if err != nil {
		t.removeLocked(id, e)
		t.mu.Unlock()
		close(e.done)
		return Answer{}, false, err
	}
	e.fp, e.ans, e.answered = fp, out.Answer, true
	at := now
	if out.Recorded {
		e.fp = out.Fingerprint
		if !out.At.IsZero() {
			at = out.At
		}
	}
	e.expires = at.Add(t.o.TTL)
	if (out.Recorded || Remembered(out.Answer.Status)) && now.Before(e.expires) {
		e.kept = true
		t.kept++
		t.bytes += out.Answer.size()
		t.q = append(t.q, e)
		t.sweepLocked(now)
	} else {
		t.removeLocked(id, e)
	}
	t.mu.Unlock()
	close(e.done)
	if e.fp != fp {
		return Answer{}, false, ErrKeyReused
	}
	return out.Answer, out.Recorded, nil
}

// removeLocked removes e, the entry of id.
func (t *Table) removeLocked(id string, e *entry) {
	if t.m[id] == e {
		delete(t.m, id)
	}
	if e.kept && !e.gone {
		t.kept--
		t.bytes -= e.ans.size()
	}
	e.gone = true
}

// sweepBudget bounds the entries one sweep removes for their age; those
// over the bounds are all removed.
const sweepBudget = 16

// sweepLocked forgets, oldest first, the answers expired at now (a few)
// and those past the bounds.
func (t *Table) sweepLocked(now time.Time) {
	budget := sweepBudget
	i := 0
	for ; i < len(t.q); i++ {
		e := t.q[i]
		if e.gone {
			continue
		}
		over := t.kept > t.o.MaxKeys || t.bytes > t.o.MaxBytes
		if !over && (budget == 0 || now.Before(e.expires)) {
			break
		}
		if !over {
			budget--
		}
		t.removeLocked(e.id, e)
	}
	if i > 0 {
		clear(t.q[:i])
		t.q = t.q[i:]
		if cap(t.q) > 1024 && len(t.q) < cap(t.q)/4 {
			t.q = append([]*entry(nil), t.q...)
		}
	}
}

// Len returns how many answers the table keeps.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.kept
}
