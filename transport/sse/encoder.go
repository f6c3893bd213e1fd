package sse

import (
	"encoding/json"
	"strconv"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/transport/internal/push"
)

// encoder writes events:
//
//	id: EPOCH:VERSION
//	event: commit | catchup | reset
//	data: one line of compact JSON
//
// A commit's data is the commit alone, {version, at, ops}; a catch-up's
// and a reset's carry their collection.
type encoder struct{}

var _ push.StreamEncoder = encoder{}

// eventTail ends an event, after its data.
var eventTail = []byte("\n\n")

// Commit implements push.Encoder: the event's lines before its data, the
// commit's JSON, and the end of the event.
func (encoder) Commit(dst []byte, f *fanout.Frame) (out, body, tail []byte) {
	dst = append(dst, "id: "...)
	dst = append(dst, f.Epoch...)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, f.Version(), 10)
	return append(dst, "\nevent: commit\ndata: "...), f.JSON(), eventTail
}

// CatchUp implements push.Encoder.
func (encoder) CatchUp(cu *protocol.CatchUp) ([][]byte, error) {
	return event("catchup", protocol.Cursor{Epoch: cu.Epoch, Version: cu.Version}, cu)
}

// Reset implements push.Encoder.
func (encoder) Reset(s *protocol.Snapshot) ([][]byte, error) {
	return event("reset", protocol.Cursor{Epoch: s.Epoch, Version: s.Version}, s)
}

// event encodes v as the data of an event. JSON from encoding/json has
// no raw line breaks (control characters in strings are escaped, raw
// values compacted): the data is one line.
func event(kind string, id protocol.Cursor, v any) ([][]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	head := append([]byte("id: "), id.String()...)
	head = append(head, "\nevent: "...)
	head = append(head, kind...)
	head = append(head, "\ndata: "...)
	return [][]byte{head, data, eventTail}, nil
}

// pingEvent is a comment line that keeps an idle stream alive.
var pingEvent = []byte(": ping\n\n")

// Progress implements push.Encoder: a "progress" event whose id moves the
// client's cursor (Last-Event-ID), data {"epoch":…,"version":…}.
func (encoder) Progress(_, epoch string, version uint64) []byte {
	b := make([]byte, 0, 96+2*len(epoch))
	b = append(b, "id: "...)
	b = protocol.Cursor{Epoch: epoch, Version: version}.AppendTo(b)
	b = append(b, "\nevent: progress\ndata: {\"epoch\":\""...)
	b = append(b, epoch...)
	b = append(b, `","version":`...)
	b = strconv.AppendUint(b, version, 10)
	return append(b, "}\n\n"...)
}

// Ping implements push.StreamEncoder.
func (encoder) Ping() []byte { return pingEvent }

// The "error" events ending a stream: the contract's error body, without
// an id (they do not move the cursor).
var (
	expiredEvent = errorEvent(push.EndExpired)
	busyEvent    = errorEvent(push.EndBusy)
)

func errorEvent(r push.EndReason) []byte {
	return []byte("event: error\ndata: " + string(protocol.MarshalError(r.Code(), r.Message())) + "\n\n")
}

// End implements push.StreamEncoder: an "error" event when the token
// expired or history is busy; nothing when the server shuts down (the
// client reconnects after the retry hint, as after any end).
func (encoder) End(r push.EndReason) []byte {
	switch r {
	case push.EndExpired:
		return expiredEvent
	case push.EndBusy:
		return busyEvent
	}
	return nil
}

var (
	presenceHead = []byte("event: presence\ndata: ")
	eventEnd     = []byte("\n\n")
)

// Presence implements push.StreamEncoder: a "presence" event, without an
// id (it does not move the cursor), whose data is the presence message.
func (encoder) Presence(msg []byte) [][]byte { return [][]byte{presenceHead, msg, eventEnd} }
