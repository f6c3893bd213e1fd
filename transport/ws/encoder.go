package ws

import (
	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// encoder writes a subscription's messages as WebSocket text frames. The
// server's frames are unmasked, so that a commit's frame is made once and
// written to every subscriber.
type encoder struct{}

var _ push.Encoder = encoder{}

// Commit implements push.Encoder: the frame header, then the commit
// message, {"type":"commit","collection":…,"epoch":…,"version":…,"at":…,
// "ops":[…]}.
func (encoder) Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte) {
	dst = protocol.AppendWSFrameHeader(dst, push.CommitMessageLen(f))
	out, body = push.AppendCommitMessage(dst, f)
	return out, body, nil
}

// CatchUp implements push.Encoder.
func (encoder) CatchUp(cu *protocol.CatchUp) ([][]byte, error) {
	b, err := protocol.EncodeCatchUp(cu)
	if err != nil {
		return nil, err
	}
	return [][]byte{protocol.AppendWSFrameHeader(nil, len(b)), b}, nil
}

// Reset implements push.Encoder.
func (encoder) Reset(s *protocol.Snapshot) ([][]byte, error) {
	b, err := protocol.EncodeReset(s)
	if err != nil {
		return nil, err
	}
	return [][]byte{protocol.AppendWSFrameHeader(nil, len(b)), b}, nil
}
