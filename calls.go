package viewsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/protocol"
)

// CallFunc handles a named call: it gets the caller's context and the call
// (with its argument), may read and write through call.Collection, and
// returns a result that is encoded as JSON. To answer with a particular
// error code, return a *CallError.
type CallFunc func(ctx context.Context, call *Call) (result any, err error)

// Call is one invocation of a named server function. Its Collection
// handles record the versions the handler's writes produce, or the
// versions it read, so the caller can wait until its view includes them
// (read-your-writes).
type Call struct {
	// Name is the call's name.
	Name string
	// Arg is the caller's argument, compact JSON (null when none).
	Arg json.RawMessage

	hub *Hub
	// key is the call's idempotency key (callKeyFrom), "" when it has
	// none: the handler's writes are then keyed by it (callkeys.go).
	key string

	mu       sync.Mutex
	versions map[string]uint64
	writes   map[string]int // commits made per target (callkeys.go)
}

// Collection returns a handle on a collection whose reads and writes are
// recorded in the call's answer. When the call was sent with an
// idempotency key (Hub.Once), each commit made through the handle is
// recorded under that key with the commit, so that a run of the handler
// again — after a crash, or on another node — finds it made and returns
// what it wrote instead of writing again.
func (c *Call) Collection(name string) (*Collection, error) {
	col, err := c.hub.Collection(name)
	if err != nil {
		return nil, err
	}
	col.call = c
	return col, nil
}

// Observe records that the caller should wait until its view of collection
// reaches version. Handlers that write by other means (another service
// writing through the HTTP API) report what they wrote with it.
func (c *Call) Observe(collection string, version uint64) { c.observe(collection, version) }

// observe keeps the highest version seen per collection. Safe on nil.
func (c *Call) observe(collection string, version uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.versions[collection]; !ok || version > v {
		c.versions[collection] = version
	}
}

// CallResult is the answer to a call.
type CallResult struct {
	// Result is the handler's result as JSON.
	Result json.RawMessage `json:"result"`
	// Versions maps each collection the call wrote (or, if it wrote none
	// there, read) to the version the caller's view must reach to include
	// the call's effects. Never nil.
	Versions map[string]uint64 `json:"versions"`
}

// CallError is an error a handler returns to choose the wire error code:
// {Code, Message}. A code that is not the contract's, or one that means a
// server fault, is answered as internal.
type CallError = errcode.CallError

// ErrUnknownCall is returned for a call name without a handler. It matches
// ErrNotFound too.
var ErrUnknownCall = fmt.Errorf("unknown call: %w", ErrNotFound)

// ErrCallPanic is returned when a handler panics; the panic is logged.
var ErrCallPanic = errors.New("call handler panicked")

// HandleCall registers fn under name (1–64 characters of [A-Za-z0-9_.-]),
// replacing any handler already there.
func (h *Hub) HandleCall(name string, fn CallFunc) error {
	if err := protocol.ValidateCallName(name); err != nil {
		return invalid(err)
	}
	if fn == nil {
		return invalid(errors.New("nil call handler"))
	}
	h.callsMu.Lock()
	defer h.callsMu.Unlock()
	h.calls[name] = fn
	return nil
}

// HandleCallFallback registers fn for every call name without a handler of
// its own, e.g. a proxy to a backend written in another language. With no
// fallback, such calls fail with ErrUnknownCall.
func (h *Hub) HandleCallFallback(fn CallFunc) {
	h.callsMu.Lock()
	defer h.callsMu.Unlock()
	h.fallback = fn
}

// Call runs the handler registered under name with arg (JSON; empty means
// null). The arg must keep the value rules (see protocol.Limits.CheckValue)
// and nest at most Limits.MaxValueDepth deep. A handler's panic is
// recovered and returned as ErrCallPanic.
func (h *Hub) Call(ctx context.Context, name string, arg json.RawMessage) (CallResult, error) {
	if err := protocol.ValidateCallName(name); err != nil {
		return CallResult{}, invalid(err)
	}
	if len(arg) == 0 {
		arg = json.RawMessage("null")
	}
	arg, err := (protocol.Limits{MaxValueDepth: h.limits.MaxValueDepth}).CheckValue(arg)
	if err != nil {
		return CallResult{}, invalid(fmt.Errorf("call %s: arg: %w", name, err))
	}
	h.callsMu.RLock()
	fn, ok := h.calls[name]
	if !ok {
		fn = h.fallback
	}
	h.callsMu.RUnlock()
	if fn == nil {
		return CallResult{}, fmt.Errorf("%w: %q", ErrUnknownCall, name)
	}
	call := &Call{Name: name, Arg: arg, hub: h, key: callKeyFrom(ctx), versions: map[string]uint64{}, writes: map[string]int{}}
	b, err := h.runCall(ctx, fn, call)
	if err != nil {
		return CallResult{}, err
	}
	call.mu.Lock()
	defer call.mu.Unlock()
	return CallResult{Result: b, Versions: maps.Clone(call.versions)}, nil
}

// runCall runs fn and encodes its result, turning a panic in either into
// ErrCallPanic.
func (h *Hub) runCall(ctx context.Context, fn CallFunc, call *Call) (result json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("call handler panicked", "call", call.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			result, err = nil, fmt.Errorf("%w: %s", ErrCallPanic, call.Name)
		}
	}()
	res, err := fn(ctx, call)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("call %s: encoding result: %w", call.Name, err)
	}
	return b, nil
}
