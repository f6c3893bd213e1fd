package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
)

// WSSubprotocol is the WebSocket subprotocol of API v1. A server closes a
// connection that does not negotiate it.
const WSSubprotocol = "viewsync.v1"

// MaxMessageIDLen is the longest id of a client message, in bytes.
const MaxMessageIDLen = 64

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
	TypeResult  = "result"
	TypeError   = "error"
)

// ClientMessage is one decoded client → server message: a
// *SubscribeMessage, *UnsubscribeMessage, *CallMessage, *CommitMessage or
// *AckMessage.
type ClientMessage interface {
	// Type returns the message's "type" field.
	Type() string
	// MarshalJSON encodes the message as the contract writes it.
	MarshalJSON() ([]byte, error)
	clientMessage()
}

// SubscribeMessage asks to follow a collection:
// {"type":"subscribe","collection","after"?,"epoch"?}. Without After the
// subscription starts with a reset; with it, right after the cursor.
type SubscribeMessage struct {
	Collection string
	// After is the version the client has; nil when it has none.
	After *uint64
	// Epoch is the epoch of After; empty means the current epoch. It is
	// only allowed with After.
	Epoch string
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
	return json.Marshal(struct {
		Type       string  `json:"type"`
		Collection string  `json:"collection"`
		After      *uint64 `json:"after,omitempty"`
		Epoch      string  `json:"epoch,omitempty"`
	}{TypeSubscribe, m.Collection, m.After, m.Epoch})
}

// UnsubscribeMessage stops following a collection:
// {"type":"unsubscribe","collection"}.
type UnsubscribeMessage struct {
	Collection string
}

// Type implements ClientMessage.
func (*UnsubscribeMessage) Type() string { return TypeUnsubscribe }

func (*UnsubscribeMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *UnsubscribeMessage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type       string `json:"type"`
		Collection string `json:"collection"`
	}{TypeUnsubscribe, m.Collection})
}

// CallMessage runs a named server function:
// {"type":"call","id","name","arg"}. It is answered by a result or an
// error carrying ID.
type CallMessage struct {
	ID   string
	Name string
	// Arg is the argument, any JSON value (null included).
	Arg json.RawMessage
}

// Type implements ClientMessage.
func (*CallMessage) Type() string { return TypeCall }

func (*CallMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *CallMessage) MarshalJSON() ([]byte, error) {
	arg := m.Arg
	if len(arg) == 0 {
		arg = json.RawMessage("null")
	}
	return json.Marshal(struct {
		Type string          `json:"type"`
		ID   string          `json:"id"`
		Name string          `json:"name"`
		Arg  json.RawMessage `json:"arg"`
	}{TypeCall, m.ID, m.Name, arg})
}

// CommitMessage applies ops to a collection atomically:
// {"type":"commit","id","collection","ops","if"?}. It is answered by a
// result {"version":V} or an error carrying ID.
type CommitMessage struct {
	ID         string
	Collection string
	// Ops are decoded for shape only; the hub validates their ids, kinds
	// and values against its limits.
	Ops []Op
	// If maps record ids to the version each must have (0: must not
	// exist); nil when absent.
	If map[string]uint64
}

// Type implements ClientMessage.
func (*CommitMessage) Type() string { return TypeCommit }

func (*CommitMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *CommitMessage) MarshalJSON() ([]byte, error) {
	ops := m.Ops
	if ops == nil {
		ops = []Op{}
	}
	return json.Marshal(struct {
		Type       string            `json:"type"`
		ID         string            `json:"id"`
		Collection string            `json:"collection"`
		Ops        []Op              `json:"ops"`
		If         map[string]uint64 `json:"if,omitzero"`
	}{TypeCommit, m.ID, m.Collection, ops, m.If})
}

// AckMessage tells what the client has rendered of a subscription:
// {"type":"ack","collection","version"}.
type AckMessage struct {
	Collection string
	Version    uint64
}

// Type implements ClientMessage.
func (*AckMessage) Type() string { return TypeAck }

func (*AckMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *AckMessage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type       string `json:"type"`
		Collection string `json:"collection"`
		Version    uint64 `json:"version"`
	}{TypeAck, m.Collection, m.Version})
}

// ResultMessage answers a call or a commit:
// {"type":"result","id","result","versions"}.
type ResultMessage struct {
	ID string `json:"id"`
	// Result is the call's result, or {"version":V} for a commit.
	Result json.RawMessage `json:"result"`
	// Versions maps collections to the version the client's view must
	// reach to include the effects; never nil on the wire.
	Versions map[string]uint64 `json:"versions"`
}

// EncodeReset encodes a reset message, {"type":"reset",…snapshot}. The
// snapshot must name its collection.
func EncodeReset(s *Snapshot) ([]byte, error) {
	if s.Collection == "" {
		return nil, errors.New("protocol: reset without a collection")
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return spliceType(TypeReset, b), nil
}

// EncodeCatchUp encodes a catch-up message, {"type":"catchup",…catch-up}.
// The catch-up must name its collection.
func EncodeCatchUp(c *CatchUp) ([]byte, error) {
	if c.Collection == "" {
		return nil, errors.New("protocol: catch-up without a collection")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return spliceType(TypeCatchUp, b), nil
}

// spliceType returns obj, a JSON object, with "type":typ as its first
// field, copying obj's encoding once instead of encoding it again.
func spliceType(typ string, obj []byte) []byte {
	out := make([]byte, 0, len(obj)+len(typ)+11)
	out = append(out, `{"type":"`...)
	out = append(out, typ...)
	out = append(out, '"')
	if rest := bytes.TrimSpace(obj[1:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, obj[1:]...)
}

// EncodeResult encodes a result message. A nil result encodes as null, nil
// versions as {}.
func EncodeResult(id string, result json.RawMessage, versions map[string]uint64) ([]byte, error) {
	if len(result) == 0 {
		result = json.RawMessage("null")
	}
	if versions == nil {
		versions = map[string]uint64{}
	}
	return json.Marshal(struct {
		Type string `json:"type"`
		ResultMessage
	}{TypeResult, ResultMessage{ID: id, Result: result, Versions: versions}})
}

// EncodeError encodes an error message, {"type":"error","id"?,"code","message"};
// id is left out when empty.
func EncodeError(id string, code Code, message string) []byte {
	b, err := json.Marshal(struct {
		Type    string `json:"type"`
		ID      string `json:"id,omitempty"`
		Code    Code   `json:"code"`
		Message string `json:"message"`
	}{TypeError, id, code, message})
	if err != nil {
		// Strings always encode; keep a valid message regardless.
		return []byte(`{"type":"error","code":"internal","message":"encoding error failed"}`)
	}
	return b
}
