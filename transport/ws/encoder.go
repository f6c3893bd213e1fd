package ws

import (
	"bytes"
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
// message, {"type":"commit","collection":…,"sub":…?,"epoch":…,
// "version":…,"after":…?,"at":…,"ops":[…]}.
func (e encoder) Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte) {
	if e.sub == "" {
		dst = protocol.AppendWSFrameHeader(dst, push.CommitMessageLen(f))
		out, body = push.AppendCommitMessage(dst, f)
		return out, body, nil
	}
	var stack [128]byte
	head, body := push.AppendCommitMessage(stack[:0], f)
	msg := withSub(head, e.sub)
	dst = protocol.AppendWSFrameHeader(dst, len(msg)+len(body))
	return append(dst, msg...), body, nil
}

// CatchUp implements push.Encoder.
func (e encoder) CatchUp(cu *protocol.CatchUp) ([][]byte, error) {
	b, err := protocol.EncodeCatchUp(cu)
	if err != nil {
		return nil, err
	}
	b = withSub(b, e.sub)
	return [][]byte{protocol.AppendWSFrameHeader(nil, len(b)), b}, nil
}

// Reset implements push.Encoder.
func (e encoder) Reset(s *protocol.Snapshot) ([][]byte, error) {
	b, err := protocol.EncodeReset(s)
	if err != nil {
		return nil, err
	}
	b = withSub(b, e.sub)
	return [][]byte{protocol.AppendWSFrameHeader(nil, len(b)), b}, nil
}

// Progress implements push.Encoder.
func (e encoder) Progress(collection, epoch string, version uint64) []byte {
	msg := withSub(push.AppendProgress(nil, collection, epoch, version), e.sub)
	return append(protocol.AppendWSFrameHeader(make([]byte, 0, len(msg)+10), len(msg)), msg...)
}

// withSub returns msg, a server message {"type":"…",…}, with
// "sub":sub as its second field; msg itself when sub is empty. A
// subscription id needs no escaping (protocol.ValidateSubID).
func withSub(msg []byte, sub string) []byte {
	if sub == "" {
		return msg
	}
	// The type's value is a plain word: its field ends at the first comma.
	i := bytes.IndexByte(msg, ',')
	if i < 0 {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(sub)+10)
	out = append(out, msg[:i+1]...)
	out = append(out, `"sub":"`...)
	out = append(out, sub...)
	out = append(out, `",`...)
	return append(out, msg[i+1:]...)
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
