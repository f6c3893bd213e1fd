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

// SSE returns the commit as one Server-Sent Event, encoded once and kept
// for every subscriber:
//
//	id: EPOCH:VERSION
//	event: commit
//	data: {"version":…,"at":…,"ops":[…]}
func (f *Frame) SSE() []byte {
	f.sseOnce.Do(func() {
		b := f.AppendSSEHead(make([]byte, 0, len(f.json)+len(f.Epoch)+48))
		b = append(b, f.json...)
		f.sse = append(b, SSETail...)
	})
	return f.sse
}

// AppendSSEHead appends the lines of the commit's event before its data:
// the event is the head, then JSON, then SSETail. A transport writing a
// frame once (a page read for one subscriber) writes the three without
// building the event, so that the commit's values are not copied.
func (f *Frame) AppendSSEHead(b []byte) []byte {
	b = append(b, "id: "...)
	b = append(b, f.Epoch...)
	b = append(b, ':')
	b = strconv.AppendUint(b, f.Commit.Version, 10)
	return append(b, "\nevent: commit\ndata: "...)
}

// SSETail ends a commit's event, after its JSON.
var SSETail = []byte("\n\n")

// WS returns the commit as one WebSocket message:
// {"type":"commit","collection":…,"epoch":…,"version":…,"at":…,"ops":[…]}.
func (f *Frame) WS() []byte {
	b := f.WSFrame()
	return b[f.wsHeader:]
}

// WSFrame returns the WebSocket message of WS as a whole frame, header
// included, ready to be written to any client's connection; it is encoded
// once and kept for every subscriber.
func (f *Frame) WSFrame() []byte {
	f.wsOnce.Do(func() {
		b := f.AppendWSHead(make([]byte, 0, protocol.WSFrameHeaderLen(f.wsLen())+f.wsLen()))
		f.wsHeader = len(b) - (f.wsLen() - (len(f.json) - 1))
		f.ws = append(b, f.json[1:]...) // the commit's fields, after its '{'
	})
	return f.ws
}

// AppendWSHead appends the WebSocket frame of WSFrame up to the commit's
// fields: the frame header, then {"type":"commit","collection":…,"epoch":…,
// — the frame is the head, then WSBody. Like AppendSSEHead, it is for
// writing a frame once without copying the commit's values.
func (f *Frame) AppendWSHead(b []byte) []byte {
	b = protocol.AppendWSFrameHeader(b, f.wsLen())
	b = append(b, `{"type":"commit","collection":"`...)
	b = append(b, f.Collection...)
	b = append(b, `","epoch":"`...)
	b = append(b, f.Epoch...)
	return append(b, `",`...)
}

// WSBody is the rest of the WebSocket frame after AppendWSHead: the
// commit's fields, shared, not a copy.
func (f *Frame) WSBody() []byte { return f.json[1:] }

// wsLen is the length of the WebSocket message.
func (f *Frame) wsLen() int {
	return len(`{"type":"commit","collection":"`) + len(f.Collection) + len(`","epoch":"`) + len(f.Epoch) + len(`",`) + len(f.json) - 1
}

// size is the frame's share of a topic's byte bound.
func (f *Frame) size() int { return frameOverhead + 2*len(f.json) }
