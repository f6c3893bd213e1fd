package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// WSSubprotocol is the WebSocket subprotocol of API v1. A server closes a
// connection that does not negotiate it.
const WSSubprotocol = "viewsync.v1"

// The bounds of a message id.
const (
	// MaxStringIDLen bounds a string id: its text, unescaped, in bytes.
	MaxStringIDLen = 128
	// MaxNumberIDLen bounds a number id: its JSON text, in bytes.
	MaxNumberIDLen = 32
)

// MessageID is the id of a call or commit message, which the result or
// error answering it carries back. As in JSON-RPC, it is a JSON string or
// number, kept as the JSON text the client sent ("a" with its quotes; 7,
// 7.0 or -7e0 as written), so that the answer echoes it byte for byte. A
// string id holds 1–MaxStringIDLen bytes once unescaped; a number is at
// most MaxNumberIDLen bytes of text. The zero MessageID is no id.
type MessageID struct {
	raw string // the JSON text; empty for no id
}

// StringID returns the id that is the JSON string s.
func StringID(s string) MessageID { return MessageID{raw: string(appendString(nil, s))} }

// IntID returns the id that is the JSON number n.
func IntID(n int64) MessageID { return MessageID{raw: strconv.FormatInt(n, 10)} }

// IsZero reports whether id is no id.
func (id MessageID) IsZero() bool { return id.raw == "" }

// String returns the id's JSON text, such as "a" (quotes included) or 7;
// empty for no id.
func (id MessageID) String() string { return id.raw }

// MarshalJSON returns the id's JSON text; no id encodes as null.
func (id MessageID) MarshalJSON() ([]byte, error) {
	if id.raw == "" {
		return []byte("null"), nil
	}
	return []byte(id.raw), nil
}

// UnmarshalJSON reads a string or number id within the bounds; null
// reads as no id.
func (id *MessageID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*id = MessageID{}
		return nil
	}
	v, err := parseMessageID(b)
	if err != nil {
		return fmt.Errorf("%w: id: %v", ErrBadMessage, err)
	}
	*id = v
	return nil
}

// parseMessageID reads the JSON text of an id, refusing what is not a
// string or a number within the bounds.
func parseMessageID(b []byte) (MessageID, error) {
	if len(b) == 0 {
		return MessageID{}, errors.New("empty")
	}
	switch c := b[0]; {
	case c == '"':
		// Unescaped, a string is never longer; the bound is checked
		// again on its text.
		if len(b) > 2+6*MaxStringIDLen {
			return MessageID{}, fmt.Errorf("a string id must be 1-%d bytes", MaxStringIDLen)
		}
		if err := scanJSON(b, 0, true); err != nil {
			return MessageID{}, err
		}
		s, err := unquote(b)
		if err != nil {
			return MessageID{}, err
		}
		if s == "" || len(s) > MaxStringIDLen {
			return MessageID{}, fmt.Errorf("a string id must be 1-%d bytes, got %d", MaxStringIDLen, len(s))
		}
	case c == '-' || c >= '0' && c <= '9':
		if len(b) > MaxNumberIDLen {
			return MessageID{}, fmt.Errorf("a number id must be at most %d bytes of JSON, got %d", MaxNumberIDLen, len(b))
		}
		if err := scanJSON(b, 0, true); err != nil {
			return MessageID{}, err
		}
	default:
		kind := "an object"
		switch c {
		case 'n':
			kind = "null"
		case 't', 'f':
			kind = "a boolean"
		case '[':
			kind = "an array"
		}
		return MessageID{}, fmt.Errorf("must be a string or a number, not %s", kind)
	}
	return MessageID{raw: string(b)}, nil
}

// The types of WebSocket messages, client → server.
const (
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeCall        = "call"
	TypeCommit      = "commit"
	TypeAck         = "ack"
)

// The types of WebSocket messages, server → client. A commit travels as
// TypeCommit, the same word as the client's commit request.
const (
	TypeReset   = "reset"
	TypeCatchUp = "catchup"
	// TypeProgress moves a filtered view's cursor past commits that did
	// not concern it: {"type":"progress","collection","sub"?,"epoch","version"}.
	TypeProgress = "progress"
	TypeResult   = "result"
	TypeError    = "error"
)

// ClientMessage is one decoded client → server message: a
// *SubscribeMessage, *UnsubscribeMessage, *CallMessage, *CommitMessage,
// *AckMessage or *PresenceMessage.
type ClientMessage interface {
	// Type returns the message's "type" field.
	Type() string
	// MarshalJSON encodes the message as the contract writes it.
	MarshalJSON() ([]byte, error)
	clientMessage()
}

// SubscribeMessage asks to follow a collection, or a filtered view of it:
// {"type":"subscribe","collection","sub"?,"where"?,"after"?,"epoch"?,"presence"?}.
// Without After the subscription starts with a reset; with it, right
// after the cursor.
type SubscribeMessage struct {
	Collection string `json:"collection"`
	// Sub is the client's id of the subscription, echoed on each of its
	// messages, so that one connection can hold several views of one
	// collection; see ValidateSubID. Empty: the subscription is known by
	// its collection's name, one per collection.
	Sub string `json:"sub,omitempty"`
	// Where is the view's filter, a JSON object (package filter parses
	// it); empty for the whole collection.
	Where json.RawMessage `json:"where,omitempty"`
	// After is the version the client has; nil when it has none.
	After *uint64 `json:"after,omitempty"`
	// Epoch is the epoch of After; empty means the current epoch. It is
	// only allowed with After.
	Epoch string `json:"epoch,omitempty"`
	// Presence asks for the collection's presence too: a presence sync,
	// then its changes, as presence messages (see package presence).
	Presence bool `json:"presence,omitempty"`
}

// Cursor returns the cursor to resume from, or nil to start with a reset.
func (m *SubscribeMessage) Cursor() *Cursor {
	if m.After == nil {
		return nil
	}
	return &Cursor{Epoch: m.Epoch, Version: *m.After}
}

// Type implements ClientMessage.
func (*SubscribeMessage) Type() string { return TypeSubscribe }

func (*SubscribeMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *SubscribeMessage) MarshalJSON() ([]byte, error) {
	type fields SubscribeMessage // without this method
	return marshalTyped(TypeSubscribe, "", (*fields)(m))
}

// UnsubscribeMessage stops following a collection:
// {"type":"unsubscribe","collection","sub"?}.
type UnsubscribeMessage struct {
	Collection string `json:"collection"`
	// Sub names the subscription when it was made with one.
	Sub string `json:"sub,omitempty"`
}

// Type implements ClientMessage.
func (*UnsubscribeMessage) Type() string { return TypeUnsubscribe }

func (*UnsubscribeMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *UnsubscribeMessage) MarshalJSON() ([]byte, error) {
	type fields UnsubscribeMessage
	return marshalTyped(TypeUnsubscribe, "", (*fields)(m))
}

// CallMessage runs a named server function:
// {"type":"call","id","name","arg","idempotencyKey"?}. It is answered by
// a result or an error carrying ID.
type CallMessage struct {
	ID   MessageID `json:"id"`
	Name string    `json:"name"`
	// Arg is the argument, any JSON value (null included); empty encodes
	// as null.
	Arg json.RawMessage `json:"arg"`
	// IdempotencyKey, when not empty, makes the call run at most once
	// for the key: a retry gets the first answer, marked replayed (see
	// MarkReplayed). The server checks it (1–255 printable ASCII bytes
	// by default).
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// Type implements ClientMessage.
func (*CallMessage) Type() string { return TypeCall }

func (*CallMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *CallMessage) MarshalJSON() ([]byte, error) {
	type fields CallMessage
	f := fields(*m)
	if len(f.Arg) == 0 {
		f.Arg = json.RawMessage("null")
	}
	return marshalTyped(TypeCall, "", &f)
}

// CommitMessage applies ops to a collection atomically:
// {"type":"commit","id","collection","ops","if"?,"idempotencyKey"?}. It is
// answered by a result {"version":V} or an error carrying ID.
type CommitMessage struct {
	ID         MessageID `json:"id"`
	Collection string    `json:"collection"`
	// Ops are decoded for shape only; the hub validates their ids, kinds
	// and values against its limits. Nil encodes as [].
	Ops []Op `json:"ops"`
	// If maps record ids to the version each must have (0: must not
	// exist); nil when absent.
	If map[string]uint64 `json:"if,omitzero"`
	// IdempotencyKey, when not empty, makes the commit apply at most
	// once for the key, as CallMessage's does.
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

// Type implements ClientMessage.
func (*CommitMessage) Type() string { return TypeCommit }

func (*CommitMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *CommitMessage) MarshalJSON() ([]byte, error) {
	type fields CommitMessage
	f := fields(*m)
	if f.Ops == nil {
		f.Ops = []Op{}
	}
	return marshalTyped(TypeCommit, "", &f)
}

// AckMessage tells what the client has rendered of a subscription:
// {"type":"ack","collection","sub"?,"version"}.
type AckMessage struct {
	Collection string `json:"collection"`
	// Sub names the subscription when it was made with one.
	Sub     string `json:"sub,omitempty"`
	Version uint64 `json:"version"`
}

// Type implements ClientMessage.
func (*AckMessage) Type() string { return TypeAck }

func (*AckMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *AckMessage) MarshalJSON() ([]byte, error) {
	type fields AckMessage
	return marshalTyped(TypeAck, "", (*fields)(m))
}

// EncodeReset encodes a reset message, {"type":"reset","sub"?,…snapshot},
// sub being the WebSocket subscription's id (left out when empty). The
// snapshot must name its collection.
func EncodeReset(s *Snapshot, sub string) ([]byte, error) {
	if s.Collection == "" {
		return nil, errors.New("protocol: reset without a collection")
	}
	return marshalTyped(TypeReset, sub, s)
}

// EncodeCatchUp encodes a catch-up message,
// {"type":"catchup","sub"?,…catch-up}, as EncodeReset does. The catch-up
// must name its collection.
func EncodeCatchUp(c *CatchUp, sub string) ([]byte, error) {
	if c.Collection == "" {
		return nil, errors.New("protocol: catch-up without a collection")
	}
	return marshalTyped(TypeCatchUp, sub, c)
}

// marshalTyped encodes v, whose JSON is an object, as a message of type
// typ: "type":typ, "sub":sub when not empty, then v's fields.
func marshalTyped(typ, sub string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return splice(AppendHead(nil, typ, MessageID{}, sub), b), nil
}

// AppendHead appends the start of a server or client message of type typ,
// with id and sub when they are not zero: {"type":typ,"id":id,"sub":sub —
// the id as its JSON text, byte for byte; sub, a subscription's id
// (ValidateSubID), needs no escaping. The message's other fields follow,
// each after a comma.
func AppendHead(b []byte, typ string, id MessageID, sub string) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, '"')
	if !id.IsZero() {
		b = append(b, `,"id":`...)
		b = append(b, id.raw...)
	}
	if sub != "" {
		b = append(b, `,"sub":"`...)
		b = append(b, sub...)
		b = append(b, '"')
	}
	return b
}

// splice returns head, the start of a JSON object up to a field's end,
// followed by the fields of obj, a JSON object.
func splice(head, obj []byte) []byte {
	out := make([]byte, 0, len(head)+len(obj)+1)
	out = append(out, head...)
	if rest := bytes.TrimSpace(obj[1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, obj[1:]...)
}

// EncodeResult encodes a result message, which answers a call or a
// commit: {"type":"result","id","result","versions"}, the id as the
// message answered had it. The result is a call's, or {"version":V} for a
// commit; versions map collections to the version the client's view must
// reach to include the effects. A nil result encodes as null, nil versions
// as {}.
func EncodeResult(id MessageID, result json.RawMessage, versions map[string]uint64) ([]byte, error) {
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if versions == nil {
		versions = map[string]uint64{}
	}
	b, err := json.Marshal(struct {
		Result   json.RawMessage   `json:"result"`
		Versions map[string]uint64 `json:"versions"`
	}{result, versions})
	if err != nil {
		return nil, err
	}
	return splice(AppendHead(nil, TypeResult, id, ""), b), nil
}

// MarkReplayed adds "replayed":true to a result or error message: its
// answer was given before, to the same idempotency key, and nothing ran
// again.
func MarkReplayed(msg []byte) []byte {
	if len(msg) == 0 || msg[len(msg)-1] != '}' {
		return msg
	}
	out := make([]byte, 0, len(msg)+len(`,"replayed":true`))
	out = append(out, msg[:len(msg)-1]...)
	return append(out, `,"replayed":true}`...)
}

// EncodeError encodes an error message,
// {"type":"error","id"?,"sub"?,"code","message"}: the id, as the message
// answered had it, and the id of the subscription it is about are left
// out when zero.
func EncodeError(id MessageID, sub string, code Code, message string) []byte {
	b, err := json.Marshal(struct {
		Code    Code   `json:"code"`
		Message string `json:"message"`
	}{code, message})
	if err != nil {
		// Strings always encode; keep a valid message regardless.
		b = []byte(`{"code":"internal","message":"encoding error failed"}`)
	}
	return splice(AppendHead(nil, TypeError, id, sub), b)
}
