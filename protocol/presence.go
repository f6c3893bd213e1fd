package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// TypePresence is the type of presence messages, both ways: a client
// publishing its presence in a collection, and the server telling a
// collection's subscribers who is present (see package presence).
const TypePresence = "presence"

// PresenceAction is what a presence message or body asks, read from its
// "state" field: absent, a heartbeat; null, a leave; an object, a set.
type PresenceAction uint8

// The actions of presence messages and bodies.
const (
	// PresenceHeartbeat refreshes the sender's presence; nothing is
	// fanned out.
	PresenceHeartbeat PresenceAction = iota + 1
	// PresenceSet publishes the sender's state (and record).
	PresenceSet
	// PresenceClear withdraws the sender's presence from the collection.
	PresenceClear
)

// MaxPresenceDepth bounds the nesting of a presence state: small,
// ephemeral objects such as {"editing":"p7","name":"Ana"}.
const MaxPresenceDepth = 8

// PresenceMessage publishes a WebSocket connection's presence in a
// collection: {"type":"presence","id"?,"collection","record"?,"state"?}.
// A set or clear with an id is answered with a result; a heartbeat is
// never answered, except by an error.
type PresenceMessage struct {
	// ID is the client's id of the message, or zero.
	ID         MessageID `json:"id,omitzero"`
	Collection string    `json:"collection"`
	PresenceBody
}

// Type implements ClientMessage.
func (*PresenceMessage) Type() string { return TypePresence }

func (*PresenceMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *PresenceMessage) MarshalJSON() ([]byte, error) {
	b := AppendHead(nil, TypePresence, m.ID, "")
	b = append(b, `,"collection":`...)
	b = appendString(b, m.Collection)
	return m.PresenceBody.appendFields(b), nil
}

// PresenceBody is what a presence message or the body of PUT
// /v1/collections/{c}/presence carries: {"session"?,"record"?,"state"?}.
type PresenceBody struct {
	// Session is the presence session a stream gave its client (HTTP
	// only: a WebSocket connection is its own session).
	Session string `json:"session,omitempty"`
	// Record is the id of the record the presence is about, if any.
	Record string `json:"record,omitempty"`
	// Action is what the body asks, read from "state".
	Action PresenceAction `json:"-"`
	// State is the published state, a compact JSON object, for
	// PresenceSet; nil otherwise.
	State json.RawMessage `json:"state,omitempty"`
}

// appendFields appends the body's fields, each after a comma, and the
// closing brace.
func (p *PresenceBody) appendFields(b []byte) []byte {
	if p.Session != "" {
		b = append(b, `,"session":`...)
		b = appendString(b, p.Session)
	}
	if p.Record != "" {
		b = append(b, `,"record":`...)
		b = appendString(b, p.Record)
	}
	switch p.Action {
	case PresenceSet:
		b = append(b, `,"state":`...)
		b = append(b, p.State...)
	case PresenceClear:
		b = append(b, `,"state":null`...)
	}
	return append(b, '}')
}

// MaxSessionLen bounds a presence session id.
const MaxSessionLen = 64

// ValidateSession checks a presence session id: 1 to MaxSessionLen
// characters of a-z, A-Z, 0-9, '_' and '-'.
func ValidateSession(s string) error {
	if s == "" || len(s) > MaxSessionLen {
		return fmt.Errorf("%w: a presence session has 1 to %d characters", ErrBadMessage, MaxSessionLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%w: a presence session has only a-z, A-Z, 0-9, _ and -", ErrBadMessage)
		}
	}
	return nil
}

// DecodePresenceBody decodes the body of PUT /v1/collections/{c}/presence,
// {"session","record"?,"state"?}, as strictly as a WebSocket message: one
// UTF-8 JSON object, no repeated or unknown fields; "session" is
// required; "record" is a record id (checked against the contract's
// bound; the hub applies its own); "state" is absent (a heartbeat), null
// (a leave) or an object keeping the value rules, nested at most
// MaxPresenceDepth deep (a set). The size of the state is the caller's to
// bound. Errors wrap ErrBadMessage.
func DecodePresenceBody(b []byte) (PresenceBody, error) {
	fields, err := parseMessage(b)
	if err != nil {
		return PresenceBody{}, &MessageError{Err: fmt.Errorf("%w: presence body: %w", ErrBadMessage, err)}
	}
	d := decoder{fields: fields, typ: "presence body"}
	p := d.presenceBody(true)
	d.done()
	if d.err != nil {
		return PresenceBody{}, d.err
	}
	return p, nil
}

func (d *decoder) presence() ClientMessage {
	m := &PresenceMessage{Collection: d.collection()}
	if _, ok := d.fields.get("id"); ok {
		m.ID = d.messageID()
	}
	m.PresenceBody = d.presenceBody(false)
	d.done()
	return m
}

// presenceBody reads "session" (required when withSession, refused
// otherwise), "record" and "state".
func (d *decoder) presenceBody(withSession bool) PresenceBody {
	var p PresenceBody
	if withSession {
		if s, ok := d.string("session", true); ok {
			if err := ValidateSession(s); err != nil {
				d.failWrap("session", err)
			}
			p.Session = s
		}
	}
	if r, ok := d.string("record", false); ok {
		if err := ValidateID(r, MaxIDLen); err != nil {
			d.failWrap("record", err)
		}
		p.Record = r
	}
	raw, ok := d.raw("state", false)
	switch {
	case !ok:
		p.Action = PresenceHeartbeat
		if p.Record != "" {
			d.fail(`field "record" without "state" (a heartbeat carries neither)`)
		}
	case string(raw) == "null":
		p.Action = PresenceClear
		if p.Record != "" {
			d.fail(`field "record" with a null "state" (a leave carries neither)`)
		}
	case raw[0] != '{':
		d.fail(`field "state": a presence state is a JSON object, or null to leave`)
	default:
		v, err := Limits{MaxValueDepth: MaxPresenceDepth}.CheckValue(raw)
		if err != nil {
			d.failWrap("state", err)
			return p
		}
		p.Action = PresenceSet
		p.State = bytes.Clone(v)
	}
	return p
}
