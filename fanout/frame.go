package fanout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/viewsync/viewsync/protocol"
)

// Frame is one commit, encoded once as JSON and once per wire format that
// asks for it (Encoding), and shared by every subscriber. Frames are
// immutable once made.
type Frame struct {
	// Collection and Epoch name the history the commit belongs to.
	Collection string
	Epoch      string
	// Commit is the commit itself.
	Commit protocol.Commit

	// json is the commit's JSON, {"version":…,"at":…,"ops":[…]}.
	json []byte
	// prev holds, for each op, its record's value before it (nil: none),
	// when known (NewFrameWithPrev); filtered views need it.
	prev []json.RawMessage

	// encs holds the encodings made so far; it is replaced, never
	// changed, when one is added, under mu.
	encs atomic.Pointer[[]encoding]
	mu   sync.Mutex
}

// An Encoder encodes commits in one wire format (an event of Server-Sent
// Events, a WebSocket frame, a line of JSON). Encoders are compared with
// ==, as the keys of a frame's encodings: two equal encoders must encode
// alike, and an encoder's dynamic type must be comparable. An empty struct
// type per format is the simplest such encoder.
type Encoder interface {
	// EncodeFrame returns f in the encoder's format.
	EncodeFrame(f *Frame) []byte
}

// encoding is a frame's encoding by one encoder.
type encoding struct {
	enc Encoder
	b   []byte
}

// frameOverhead approximates a frame's memory beyond its encodings, for the
// byte bound of a topic's buffer.
const frameOverhead = 256

// NewFrame encodes c. Collection and epoch must be valid (encoders write
// them without escaping), and c's values compact JSON, as every stored
// commit's are (others are compacted here). It fails only for values that
// are not JSON.
func NewFrame(collection, epoch string, c protocol.Commit) (*Frame, error) {
	enc, copied := c, false
	for i, op := range c.Ops {
		if len(op.Value) == 0 || protocol.IsCompact(op.Value) {
			continue
		}
		// Not as stored commits are: compact a copy, so that an encoding
		// stays on one line.
		if !copied {
			enc.Ops, copied = slices.Clone(c.Ops), true
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, op.Value); err != nil {
			return nil, fmt.Errorf("fanout: op %d of commit %d: %w", i, c.Version, err)
		}
		enc.Ops[i].Value = buf.Bytes()
	}
	b := protocol.AppendCommit(make([]byte, 0, commitSize(enc)), enc)
	return &Frame{Collection: collection, Epoch: epoch, Commit: c, json: b}, nil
}

// NewFrameWithPrev is NewFrame for a commit whose ops' previous values
// are known: prev[i] is the value op i's record had before it (nil: none),
// as store.Applied.Prev reports it. Filtered views restrict only such
// frames; prev of another length than c.Ops is ignored.
func NewFrameWithPrev(collection, epoch string, c protocol.Commit, prev []json.RawMessage) (*Frame, error) {
	f, err := NewFrame(collection, epoch, c)
	if err == nil && len(prev) == len(c.Ops) && len(prev) > 0 {
		f.prev = prev
	}
	return f, err
}

// newViewFrame returns the frame of f's commit restricted to ops, for a
// view whose previous frame was at version after.
func newViewFrame(f *Frame, ops []protocol.Op, after uint64) *Frame {
	c := protocol.Commit{Version: f.Commit.Version, After: &after, At: f.Commit.At, Ops: ops}
	b := protocol.AppendCommit(make([]byte, 0, commitSize(c)+24), c)
	return &Frame{Collection: f.Collection, Epoch: f.Epoch, Commit: c, json: b}
}

// hasPrev reports whether the frame knows its ops' previous values.
func (f *Frame) hasPrev() bool { return len(f.prev) > 0 }

// commitSize estimates the JSON size of c, to allocate once.
func commitSize(c protocol.Commit) int {
	n := protocol.CommitJSONOverhead
	for _, op := range c.Ops {
		n += len(`{"op":"delete","id":"","value":},`) + len(op.ID) + len(op.Value)
	}
	return n
}

// Version returns the commit's version.
func (f *Frame) Version() uint64 { return f.Commit.Version }

// JSON returns the commit as the contract encodes it: compact, on one
// line. Values are written as stored (encoding/json would escape <, > and
// & in them; both are the same JSON).
func (f *Frame) JSON() []byte { return f.json }

// Encoding returns the commit as enc encodes it. The first call for an
// encoder encodes it, once, however many subscribers ask at the same time;
// later calls return the same bytes, which the caller must not change.
func (f *Frame) Encoding(enc Encoder) []byte {
	if b, ok := f.encoding(enc); ok {
		return b
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.encoding(enc); ok {
		return b
	}
	b := enc.EncodeFrame(f)
	var encs []encoding
	if p := f.encs.Load(); p != nil {
		encs = *p
	}
	encs = append(encs[:len(encs):len(encs)], encoding{enc, b})
	f.encs.Store(&encs)
	return b
}

// encoding returns enc's encoding of f if it was made.
func (f *Frame) encoding(enc Encoder) ([]byte, bool) {
	if p := f.encs.Load(); p != nil {
		for _, e := range *p {
			if e.enc == enc {
				return e.b, true
			}
		}
	}
	return nil, false
}

// size is the frame's share of a topic's byte bound.
func (f *Frame) size() int {
	n := frameOverhead + 2*len(f.json)
	for _, p := range f.prev {
		n += len(p)
	}
	return n
}
