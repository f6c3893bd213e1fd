package ws

import (
	"sync"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// encoder writes a subscription's messages as WebSocket text frames. The
// server's frames are unmasked, so that a commit's frame is made once and
// written to every subscriber. sub, when set, is the client's id of the
// subscription, carried by each of its messages after the type: the
// subscriptions with the same id (and view) share their frames.
type encoder struct{ sub string }

var _ push.Encoder = encoder{}

// Commit implements push.Encoder: the frame header, then the commit
// message, {"type":"commit","sub"?,"collection":…,"epoch":…,
// "version":…,"after":…?,"at":…,"ops":[…]}.
func (e encoder) Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte) {
	dst = protocol.AppendWSFrameHeader(dst, push.CommitMessageLen(f, e.sub))
	out, body = push.AppendCommitMessage(dst, f, e.sub)
	return out, body, nil
}

// CatchUp implements push.Encoder.
func (e encoder) CatchUp(cu *protocol.CatchUp) ([][]byte, error) {
	b, err := protocol.EncodeCatchUp(cu, e.sub)
	if err != nil {
		return nil, err
	}
	return [][]byte{protocol.AppendWSFrameHeader(nil, len(b)), b}, nil
}

// Reset implements push.Encoder.
func (e encoder) Reset(s *protocol.Snapshot) ([][]byte, error) {
	b, err := protocol.EncodeReset(s, e.sub)
	if err != nil {
		return nil, err
	}
	return [][]byte{protocol.AppendWSFrameHeader(nil, len(b)), b}, nil
}

// Progress implements push.Encoder.
func (e encoder) Progress(collection, epoch string, version uint64) []byte {
	msg := push.AppendProgress(nil, collection, e.sub, epoch, version)
	return append(protocol.AppendWSFrameHeader(make([]byte, 0, len(msg)+10), len(msg)), msg...)
}

// maxFormats bounds the formats kept for subscription ids; past it, a
// new id's subscription gets a format of its own (its frames are encoded
// for it alone).
const maxFormats = 4096

// formats keeps one push.Format per subscription id, so that every
// subscription with the same id shares a frame's encoding.
type formats struct {
	mu   sync.Mutex
	byID map[string]*push.Format
}

// formatFor returns the format of subscriptions with id sub ("": those
// known by their collection).
func (h *Handler) formatFor(sub string) *push.Format {
	if sub == "" {
		return h.format
	}
	h.formats.mu.Lock()
	defer h.formats.mu.Unlock()
	if f := h.formats.byID[sub]; f != nil {
		return f
	}
	f := push.NewFormat(encoder{sub: sub})
	if len(h.formats.byID) < maxFormats {
		if h.formats.byID == nil {
			h.formats.byID = map[string]*push.Format{}
		}
		h.formats.byID[sub] = f
	}
	return f
}
