package viewsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Source is a writer outside viewsync that feeds collections (through
// Feed) and can tell when it has applied a position of its own history —
// a PostgreSQL LSN, say. A call whose handler wrote to the source's
// system returns that position with Call.Await, so that its answer
// includes the write (read-your-writes). Add one with Hub.AddSource;
// package pgsource's Source adds itself.
type Source interface {
	// Await returns nil once every change the source made up to pos is
	// applied — durable in viewsync and published — to the collections
	// it feeds, and ctx's error if ctx ends first. pos is the source's
	// own text for a position; one it cannot read is an error matching
	// ErrBadPosition. A source that stops returns an error matching
	// ErrClosed.
	Await(ctx context.Context, pos string) error
	// Collections returns the names of the collections the source feeds.
	Collections() []string
}

// SourceOptions configure a source added to a hub. The zero value means
// the defaults.
type SourceOptions struct {
	// AwaitTimeout bounds how long Call.Await waits for the source to
	// reach a position; past it the call fails with ErrAwaitTimeout (504
	// timeout). Default DefaultAwaitTimeout.
	AwaitTimeout time.Duration
}

// DefaultAwaitTimeout is SourceOptions.AwaitTimeout's default.
const DefaultAwaitTimeout = 10 * time.Second

// Errors of sources and Call.Await.
var (
	// ErrUnknownSource: Call.Await named no source added to the hub (or,
	// naming none, the hub has not exactly one).
	ErrUnknownSource = errors.New("unknown source")
	// ErrBadPosition: Call.Await got a position its source cannot read.
	ErrBadPosition = errors.New("bad source position")
	// ErrAwaitTimeout: the source did not reach the position Call.Await
	// waits for within its SourceOptions.AwaitTimeout. The error carrying
	// it is a *CallError with the code timeout, so a handler returning it
	// answers 504 with its message.
	ErrAwaitTimeout = errors.New("source did not reach the position in time")
)

// source is a Source added to a hub.
type source struct {
	src     Source
	timeout time.Duration
}

// AddSource adds src to the hub under name (1–64 characters of
// [A-Za-z0-9_.-], as call names), for Call.Await. A nil opts means the
// defaults. A name already taken is an error; Source implementations
// remove themselves with RemoveSource when they stop.
func (h *Hub) AddSource(name string, src Source, opts *SourceOptions) error {
	if err := protocol.ValidateCallName(name); err != nil {
		return invalid(fmt.Errorf("source name: %w", err))
	}
	if src == nil {
		return invalid(errors.New("nil source"))
	}
	var o SourceOptions
	if opts != nil {
		o = *opts
	}
	if o.AwaitTimeout < 0 {
		return invalid(errors.New("negative AwaitTimeout"))
	}
	if o.AwaitTimeout == 0 {
		o.AwaitTimeout = DefaultAwaitTimeout
	}
	h.sourcesMu.Lock()
	defer h.sourcesMu.Unlock()
	if _, ok := h.sources[name]; ok {
		return fmt.Errorf("viewsync: source %q already added", name)
	}
	h.sources[name] = &source{src: src, timeout: o.AwaitTimeout}
	return nil
}

// RemoveSource removes the source added under name, if it is src.
func (h *Hub) RemoveSource(name string, src Source) {
	h.sourcesMu.Lock()
	defer h.sourcesMu.Unlock()
	if s, ok := h.sources[name]; ok && s.src == src {
		delete(h.sources, name)
	}
}

// lookupSource returns the source added under name; name "" means the
// only one.
func (h *Hub) lookupSource(name string) (string, *source, error) {
	h.sourcesMu.RLock()
	defer h.sourcesMu.RUnlock()
	if name != "" {
		s, ok := h.sources[name]
		if !ok {
			return "", nil, fmt.Errorf("%w %q", ErrUnknownSource, name)
		}
		return name, s, nil
	}
	if len(h.sources) == 1 {
		for n, s := range h.sources {
			return n, s, nil
		}
	}
	return "", nil, fmt.Errorf("%w: no source named, and the hub has %d, not one", ErrUnknownSource, len(h.sources))
}

// awaitTimeoutError is what Call.Await returns at its timeout: a
// *CallError (504 timeout, with its message) matching ErrAwaitTimeout.
type awaitTimeoutError struct{ *CallError }

func (e *awaitTimeoutError) Unwrap() error        { return e.CallError }
func (e *awaitTimeoutError) Is(target error) bool { return target == ErrAwaitTimeout }

// Await makes the call's answer include the source's changes up to pos:
// it waits until the source added under source ("": the hub's only one)
// has applied pos — for PostgreSQL, the LSN pg_current_wal_lsn() returned
// after the handler's transaction committed — then records, as Observe
// does, the version each of collections has then (none named: every
// collection the source feeds), so that the caller's view waits until it
// includes them. A handler that wrote to the source's system calls it
// before returning.
//
// The wait is bounded by ctx and by the source's SourceOptions.AwaitTimeout:
// past that it fails with an error matching ErrAwaitTimeout, which a
// handler returning it answers as 504 timeout (the write itself is done;
// the view shows it once the source gets there). An unknown source
// matches ErrUnknownSource, a position the source cannot read
// ErrBadPosition, a source stopping ErrClosed; ctx ending, ctx's error.
func (c *Call) Await(ctx context.Context, source, pos string, collections ...string) error {
	name, s, err := c.hub.lookupSource(source)
	if err != nil {
		return fmt.Errorf("viewsync: call %s: await: %w", c.Name, err)
	}
	if len(collections) == 0 {
		collections = s.src.Collections()
	}
	for _, coll := range collections {
		if err := protocol.ValidateCollection(coll); err != nil {
			return invalid(fmt.Errorf("call %s: await: %w", c.Name, err))
		}
	}
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	err = s.src.Await(actx, pos)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return fmt.Errorf("viewsync: call %s: await source %s at %s: %w", c.Name, name, pos, context.Cause(ctx))
	case actx.Err() != nil:
		return &awaitTimeoutError{&CallError{
			Code:    protocol.CodeTimeout,
			Message: fmt.Sprintf("source %s did not reach position %s within %s; the write is done, and views show it once the source gets there", name, pos, s.timeout),
		}}
	default:
		return fmt.Errorf("viewsync: call %s: await source %s at %q: %w", c.Name, name, pos, err)
	}
	for _, coll := range slices.Compact(slices.Sorted(slices.Values(collections))) {
		st, err := c.hub.head(ctx, coll)
		if err != nil {
			return fmt.Errorf("viewsync: call %s: await: %w", c.Name, err)
		}
		c.observe(coll, st.head.Version)
	}
	c.hub.log.Debug("call awaited its source", "call", c.Name, "source", name, "position", pos, "took", time.Since(start).String())
	return nil
}

// Versions returns the versions the call has recorded so far (by
// Collection's reads and writes, Observe and Await): what its answer will
// carry.
func (c *Call) Versions() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.versions)
}
