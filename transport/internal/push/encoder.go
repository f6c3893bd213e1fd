package push

import (
	"strconv"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
)

// Encoder writes a wire format's messages. A transport wraps its encoder
// in one Format, which its subscriptions share.
type Encoder interface {
	// Commit appends to dst the head of commit f's message and returns
	// dst, with what follows the head: body, which is f.JSON() or a part
	// of it (shared, never copied), then tail. Written one after the
	// other, they are the message.
	Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte)
	// CatchUp returns the message of a compacted catch-up, in parts
	// written one after the other.
	CatchUp(cu *protocol.CatchUp) ([][]byte, error)
	// Reset returns the message of a reset, in parts written one after
	// the other.
	Reset(s *protocol.Snapshot) ([][]byte, error)
	// Progress returns the message moving a filtered view's cursor past
	// commits that did not concern it, to epoch and version (see
	// AppendProgress).
	Progress(collection, epoch string, version uint64) []byte
}

// StreamEncoder is the Encoder of a Handler's streams, which carry one
// collection each: it also writes their keep-alives and their ends.
type StreamEncoder interface {
	Encoder
	// Ping returns the keep-alive message written to an idle stream.
	Ping() []byte
	// End returns the last message of a stream the server ends on its
	// own, saying why, or nil to say nothing.
	End(r EndReason) []byte
	// Presence returns, in parts written one after the other, the
	// message carrying msg, a presence message (presence.AppendMessage)
	// of a stream that asked for its collection's presence.
	Presence(msg []byte) [][]byte
}

// EndReason says why the server ends a stream on its own.
type EndReason int

const (
	// EndExpired: the client's token expired. It reconnects with a fresh
	// token and resumes from its cursor.
	EndExpired EndReason = iota
	// EndBusy: the stream's read of history waited in vain for the history
	// memory bound. The client resumes from its cursor later.
	EndBusy
	// EndClosing: the server is shutting down. The client resumes from its
	// cursor, here or elsewhere.
	EndClosing
)

// Code returns the contract's error code of r.
func (r EndReason) Code() protocol.Code {
	if r == EndExpired {
		return protocol.CodeUnauthorized
	}
	return protocol.CodeUnavailable
}

// Message returns the error message telling the client what to do.
func (r EndReason) Message() string {
	switch r {
	case EndExpired:
		return "token expired; reconnect with a fresh token"
	case EndBusy:
		return "too many clients are reading history at once; resume from your cursor later"
	}
	return "the server is shutting down; resume from your cursor"
}

// Format is a wire format as subscriptions share it: its Encoder, and the
// key under which a fanout.Frame keeps that format's encoding of its
// commit, made once and shared by every subscriber. A transport makes one
// with NewFormat and gives it to every Sub; frames find the encoding by
// the Format's identity, one pointer comparison per subscriber.
type Format struct{ enc Encoder }

// NewFormat returns the Format of enc.
func NewFormat(enc Encoder) *Format { return &Format{enc: enc} }

// EncodeFrame implements fanout.Encoder: the whole message of a commit.
func (e *Format) EncodeFrame(f *fanout.Frame) []byte {
	var stack [128]byte
	head, body, tail := e.enc.Commit(stack[:0], f)
	b := make([]byte, 0, len(head)+len(body)+len(tail))
	b = append(b, head...)
	b = append(b, body...)
	return append(b, tail...)
}

// AppendCommitMessage appends the head of the WebSocket protocol's commit
// message, {"type":"commit","sub"?,"collection":…,"epoch":…, sub being
// the subscription's id (left out when empty), and returns it with the
// rest: f's JSON after its opening brace. An NDJSON line is the same
// message; a WebSocket frame puts its header first.
func AppendCommitMessage(dst []byte, f *fanout.Frame, sub string) (out, body []byte) {
	dst = protocol.AppendHead(dst, protocol.TypeCommit, protocol.MessageID{}, sub)
	dst = append(dst, `,"collection":"`...)
	dst = append(dst, f.Collection...)
	dst = append(dst, `","epoch":"`...)
	dst = append(dst, f.Epoch...)
	return append(dst, `",`...), f.JSON()[1:]
}

// CommitMessageLen returns the length of f's commit message
// (AppendCommitMessage's head and body).
func CommitMessageLen(f *fanout.Frame, sub string) int {
	n := len(`{"type":"commit","collection":"","epoch":"",`) + len(f.Collection) + len(f.Epoch) + len(f.JSON()) - 1
	if sub != "" {
		n += len(`,"sub":""`) + len(sub)
	}
	return n
}

// AppendProgress appends the progress message of the WebSocket protocol,
// {"type":"progress","sub"?,"collection":…,"epoch":…,"version":…}; an
// NDJSON line is the same message. Names and epochs need no escaping.
func AppendProgress(dst []byte, collection, sub, epoch string, version uint64) []byte {
	dst = protocol.AppendHead(dst, protocol.TypeProgress, protocol.MessageID{}, sub)
	dst = append(dst, `,"collection":"`...)
	dst = append(dst, collection...)
	dst = append(dst, `","epoch":"`...)
	dst = append(dst, epoch...)
	dst = append(dst, `","version":`...)
	dst = strconv.AppendUint(dst, version, 10)
	return append(dst, '}')
}
