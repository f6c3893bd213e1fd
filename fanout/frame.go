package fanout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/viewsync/viewsync/protocol"
)

// Frame is one commit, encoded once per wire format and shared by every
// subscriber. Frames are immutable once made.
type Frame struct {
	// Collection and Epoch name the history the commit belongs to.
	Collection string
	Epoch      string
	// Commit is the commit itself.
	Commit protocol.Commit

	// json is the commit's JSON, {"version":…,"at":…,"ops":[…]}.
	json []byte

	sseOnce sync.Once
	sse     []byte
	wsOnce  sync.Once
	// ws is the WebSocket frame: wsHeader bytes of header, then the
	// message.
	ws       []byte
	wsHeader int
}

// frameOverhead approximates a frame's memory beyond its encodings, for the
// byte bound of a topic's buffer.
const frameOverhead = 256

// NewFrame encodes c. Collection and epoch must be valid (they are written
// into the encodings without escaping), and c's values compact JSON, as
// every stored commit's are (others are compacted here). It fails only
// for values that are not JSON.
func NewFrame(collection, epoch string, c protocol.Commit) (*Frame, error) {
	enc, copied := c, false
	for i, op := range c.Ops {
		if len(op.Value) == 0 || protocol.IsCompact(op.Value) {
			continue
		}
		// Not as stored commits are: compact a copy, so that an event
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

// JSON returns the commit as the contract encodes it. Values are written as
// stored (encoding/json would escape <, > and & in them; both are the same
// JSON).
func (f *Frame) JSON() []byte { return f.json }

// SSE returns the commit as one Server-Sent Event:
//
//	id: EPOCH:VERSION
//	event: commit
//	data: {"version":…,"at":…,"ops":[…]}
func (f *Frame) SSE() []byte {
	f.sseOnce.Do(func() {
		b := make([]byte, 0, len(f.json)+len(f.Epoch)+48)
		b = append(b, "id: "...)
		b = append(b, f.Epoch...)
		b = append(b, ':')
		b = strconv.AppendUint(b, f.Commit.Version, 10)
		b = append(b, "\nevent: commit\ndata: "...)
		b = append(b, f.json...)
		b = append(b, "\n\n"...)
		f.sse = b
	})
	return f.sse
}

// WS returns the commit as one WebSocket message:
// {"type":"commit","collection":…,"epoch":…,"version":…,"at":…,"ops":[…]}.
func (f *Frame) WS() []byte {
	b := f.WSFrame()
	return b[f.wsHeader:]
}

// WSFrame returns the WebSocket message of WS as a whole frame, header
// included, ready to be written to any client's connection.
func (f *Frame) WSFrame() []byte {
	f.wsOnce.Do(func() {
		n := len(`{"type":"commit","collection":"`) + len(f.Collection) + len(`","epoch":"`) + len(f.Epoch) + len(`",`) + len(f.json) - 1
		b := protocol.AppendWSFrameHeader(make([]byte, 0, protocol.WSFrameHeaderLen(n)+n), n)
		b = append(b, `{"type":"commit","collection":"`...)
		b = append(b, f.Collection...)
		b = append(b, `","epoch":"`...)
		b = append(b, f.Epoch...)
		b = append(b, `",`...)
		b = append(b, f.json[1:]...) // the commit's fields, after its '{'
		f.ws = b
		f.wsHeader = len(b) - n
	})
	return f.ws
}

// size is the frame's share of a topic's byte bound.
func (f *Frame) size() int { return frameOverhead + 2*len(f.json) }
