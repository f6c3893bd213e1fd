package fanout

import (
	"encoding/json"
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
	ws      []byte
}

// frameOverhead approximates a frame's memory beyond its encodings, for the
// byte bound of a topic's buffer.
const frameOverhead = 256

// NewFrame encodes c. Collection and epoch must be valid (they are written
// into the encodings without escaping).
func NewFrame(collection, epoch string, c protocol.Commit) (*Frame, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return &Frame{Collection: collection, Epoch: epoch, Commit: c, json: b}, nil
}

// Version returns the commit's version.
func (f *Frame) Version() uint64 { return f.Commit.Version }

// JSON returns the commit as the contract encodes it.
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
	f.wsOnce.Do(func() {
		b := make([]byte, 0, len(f.json)+len(f.Collection)+len(f.Epoch)+48)
		b = append(b, `{"type":"commit","collection":"`...)
		b = append(b, f.Collection...)
		b = append(b, `","epoch":"`...)
		b = append(b, f.Epoch...)
		b = append(b, `",`...)
		b = append(b, f.json[1:]...) // the commit's fields, after its '{'
		f.ws = b
	})
	return f.ws
}

// size is the frame's share of a topic's byte bound.
func (f *Frame) size() int { return frameOverhead + 2*len(f.json) }
