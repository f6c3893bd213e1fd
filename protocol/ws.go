package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
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

// ErrBadMessage is returned (wrapped, in a *MessageError) for a WebSocket
// message that does not follow the contract. It matches ErrBadValue too, so
// that code mapping input errors to bad_request maps it as well.
var ErrBadMessage error = badMessage{}

type badMessage struct{}

func (badMessage) Error() string { return "bad message" }

// Is makes errors.Is(ErrBadMessage, ErrBadValue) true.
func (badMessage) Is(target error) bool { return target == ErrBadValue }

// MessageError is the error DecodeClientMessage returns. It wraps
// ErrBadMessage and, when the cause is a bad name or cursor, the matching
// sentinel (ErrBadName, ErrBadCursor, ErrBadCallName) as well.
type MessageError struct {
	// ID is the id of the message when it carried a valid one, so that the
	// error can answer it; empty otherwise.
	ID string
	// Err says what is wrong.
	Err error
}

// Error implements error.
func (e *MessageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *MessageError) Unwrap() error { return e.Err }

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
func (*SubscribeMessage) Type() string   { return TypeSubscribe }
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
func (*UnsubscribeMessage) Type() string   { return TypeUnsubscribe }
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
func (*CallMessage) Type() string   { return TypeCall }
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
func (*CommitMessage) Type() string   { return TypeCommit }
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
func (*AckMessage) Type() string   { return TypeAck }
func (*AckMessage) clientMessage() {}

// MarshalJSON implements json.Marshaler.
func (m *AckMessage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type       string `json:"type"`
		Collection string `json:"collection"`
		Version    uint64 `json:"version"`
	}{TypeAck, m.Collection, m.Version})
}

// DecodeClientMessage decodes one client → server message strictly: the
// input must be one JSON object in UTF-8 with nothing after it, its "type"
// one of the five, every field of that type that is not optional present
// with the right JSON type, and no other field. Keys are matched exactly
// (case-sensitive) and may not repeat; null is not accepted for a field
// (omit an optional one instead), except as the value of "arg". Ids are
// strings of 1–MaxMessageIDLen bytes; collection and call names and epochs
// are validated. Ops are checked for shape only.
//
// Errors are *MessageError, wrapping ErrBadMessage.
func DecodeClientMessage(b []byte) (ClientMessage, error) {
	fields, err := parseMessage(b)
	if fields == nil {
		return nil, &MessageError{Err: fmt.Errorf("%w: %w", ErrBadMessage, err)}
	}
	// The id, when valid, goes with any error, so that it can answer it.
	id := ""
	if raw, ok := fields.get("id"); ok {
		if s, err := decodeString(raw); err == nil && validMessageID(s) == nil {
			id = s
		}
	}
	if err != nil {
		return nil, &MessageError{ID: id, Err: fmt.Errorf("%w: %w", ErrBadMessage, err)}
	}
	raw, ok := fields.get("type")
	if !ok {
		return nil, badMessagef(id, `missing field "type"`)
	}
	typ, err := decodeString(raw)
	if err != nil {
		return nil, badMessagef(id, `field "type": %v`, err)
	}
	d := decoder{fields: fields, typ: typ, id: id}
	var m ClientMessage
	switch typ {
	case TypeSubscribe:
		m = d.subscribe()
	case TypeUnsubscribe:
		m = d.unsubscribe()
	case TypeCall:
		m = d.call()
	case TypeCommit:
		m = d.commit()
	case TypeAck:
		m = d.ack()
	default:
		return nil, badMessagef(id, "unknown type %q (want subscribe, unsubscribe, call, commit or ack)", truncate(typ))
	}
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// decoder reads the fields of one message, keeping the first error.
type decoder struct {
	fields fieldList
	typ    string
	id     string
	used   []string
	err    error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = badMessagef(d.id, d.typ+": "+format, args...)
	}
}

// failWrap records an error that also wraps cause.
func (d *decoder) failWrap(field string, cause error) {
	if d.err == nil {
		d.err = &MessageError{ID: d.id, Err: fmt.Errorf("%w: %s: field %q: %w", ErrBadMessage, d.typ, field, cause)}
	}
}

// raw returns a field's raw value; required fields must be present.
func (d *decoder) raw(name string, required bool) (json.RawMessage, bool) {
	d.used = append(d.used, name)
	raw, ok := d.fields.get(name)
	if !ok {
		if required {
			d.fail("missing field %q", name)
		}
		return nil, false
	}
	return raw, true
}

func (d *decoder) string(name string, required bool) (string, bool) {
	raw, ok := d.raw(name, required)
	if !ok {
		return "", false
	}
	s, err := decodeString(raw)
	if err != nil {
		d.fail("field %q: %v", name, err)
		return "", false
	}
	return s, true
}

func (d *decoder) uint(name string, required bool) (uint64, bool) {
	raw, ok := d.raw(name, required)
	if !ok {
		return 0, false
	}
	v, err := decodeUint(raw)
	if err != nil {
		d.fail("field %q: %v", name, err)
		return 0, false
	}
	return v, true
}

func (d *decoder) collection() string {
	name, ok := d.string("collection", true)
	if ok {
		if err := ValidateCollection(name); err != nil {
			d.failWrap("collection", err)
		}
	}
	return name
}

func (d *decoder) messageID() string {
	id, ok := d.string("id", true)
	if ok {
		if err := validMessageID(id); err != nil {
			d.fail("field %q: %v", "id", err)
		}
	}
	return id
}

// done checks that the message has no field beyond those read.
func (d *decoder) done() {
	if d.err != nil {
		return
	}
	for _, f := range d.fields {
		known := f.key == "type"
		for _, u := range d.used {
			known = known || f.key == u
		}
		if !known {
			d.fail("unknown field %q", truncate(f.key))
			return
		}
	}
}

func (d *decoder) subscribe() ClientMessage {
	m := &SubscribeMessage{Collection: d.collection()}
	if v, ok := d.uint("after", false); ok {
		m.After = &v
	}
	if e, ok := d.string("epoch", false); ok {
		if err := ValidateEpoch(e); err != nil {
			d.failWrap("epoch", err)
		}
		if m.After == nil {
			d.fail(`field "epoch" without "after"`)
		}
		m.Epoch = e
	}
	d.done()
	return m
}

func (d *decoder) unsubscribe() ClientMessage {
	m := &UnsubscribeMessage{Collection: d.collection()}
	d.done()
	return m
}

func (d *decoder) call() ClientMessage {
	m := &CallMessage{ID: d.messageID()}
	if name, ok := d.string("name", true); ok {
		if err := ValidateCallName(name); err != nil {
			d.failWrap("name", err)
		}
		m.Name = name
	}
	if raw, ok := d.raw("arg", true); ok {
		m.Arg = bytes.Clone(raw)
	}
	d.done()
	return m
}

func (d *decoder) commit() ClientMessage {
	m := &CommitMessage{ID: d.messageID(), Collection: d.collection()}
	if raw, ok := d.raw("ops", true); ok {
		ops, err := decodeOps(raw)
		if err != nil {
			d.fail("field %q: %v", "ops", err)
		}
		m.Ops = ops
	}
	if raw, ok := d.raw("if", false); ok {
		ifs, err := decodeIfs(raw)
		if err != nil {
			d.fail("field %q: %v", "if", err)
		}
		m.If = ifs
	}
	d.done()
	return m
}

func (d *decoder) ack() ClientMessage {
	m := &AckMessage{Collection: d.collection()}
	m.Version, _ = d.uint("version", true)
	d.done()
	return m
}

// decodeOps decodes [{"op","id","value"?},…] for shape.
func decodeOps(raw json.RawMessage) ([]Op, error) {
	elems, err := arrayElems(raw)
	if err != nil {
		return nil, err
	}
	ops := make([]Op, 0, len(elems))
	for i, e := range elems {
		fields, err := objectFields(e, maxFields)
		if err != nil {
			return nil, fmt.Errorf("op %d: %v", i, err)
		}
		var op Op
		for _, f := range fields {
			switch f.key {
			case "op":
				s, err := decodeString(f.val)
				if err != nil {
					return nil, fmt.Errorf("op %d: field %q: %v", i, "op", err)
				}
				op.Op = OpKind(s)
			case "id":
				s, err := decodeString(f.val)
				if err != nil {
					return nil, fmt.Errorf("op %d: field %q: %v", i, "id", err)
				}
				op.ID = s
			case "value":
				op.Value = bytes.Clone(f.val)
			default:
				return nil, fmt.Errorf("op %d: unknown field %q", i, truncate(f.key))
			}
		}
		if _, ok := fields.get("op"); !ok {
			return nil, fmt.Errorf("op %d: missing field %q", i, "op")
		}
		if _, ok := fields.get("id"); !ok {
			return nil, fmt.Errorf("op %d: missing field %q", i, "id")
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// decodeIfs decodes {"ID":VERSION,…}.
func decodeIfs(raw json.RawMessage) (map[string]uint64, error) {
	fields, err := objectFields(raw, 0)
	if err != nil {
		return nil, err
	}
	ifs := make(map[string]uint64, len(fields))
	for _, f := range fields {
		v, err := decodeUint(f.val)
		if err != nil {
			return nil, fmt.Errorf("record %q: %v", truncate(f.key), err)
		}
		ifs[f.key] = v
	}
	return ifs, nil
}

// field is one key and raw value of a JSON object.
type field struct {
	key string
	val json.RawMessage
}

// fieldList is a JSON object's fields in order, keys unique.
type fieldList []field

func (l fieldList) get(key string) (json.RawMessage, bool) {
	for _, f := range l {
		if f.key == key {
			return f.val, true
		}
	}
	return nil, false
}

// maxFields bounds the fields of a message and of an op, which have a
// handful each; preconditions ("if") are bounded by the message size alone.
const maxFields = 64

// The scanning below works on text already checked to be valid JSON (the
// whole message is checked once, up front), so it only finds boundaries:
// it need not, and does not, validate again.

// maxMessageDepth bounds the nesting of a message: a value at its
// deepest, MaxValueDepth, inside the three levels of a commit's
// {"ops":[{"value":…}]}.
const maxMessageDepth = MaxValueDepth + 3

// parseMessage checks that b is one JSON value in UTF-8 with nothing after
// it but whitespace, which keeps the value rules (see Limits.CheckValue)
// everywhere in it, nested at most maxMessageDepth deep, and returns the
// fields of that value, which must be an object. A message that is JSON
// but breaks a rule is refused with its fields all the same, so that the
// error can answer its id: an error with fields is a broken rule, an error
// without fields a message that is not a JSON object.
func parseMessage(b []byte) (fieldList, error) {
	err := scanJSON(b, maxMessageDepth, true)
	if err != nil {
		if isSyntaxError(err) {
			return nil, err
		}
		// Checking the syntax alone costs a bit per level: no bound.
		if serr := scanJSON(b, 0, false); serr != nil {
			return nil, serr
		}
	}
	fields, ferr := objectFields(b, maxFields)
	if ferr != nil {
		return nil, ferr
	}
	return fields, err
}

// objectFields splits a valid JSON value, which must be an object, into
// its fields, refusing duplicate keys and more than max fields (max <= 0:
// no bound). The values share b's memory.
func objectFields(b []byte, max int) (fieldList, error) {
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var fields fieldList
	var seen map[string]struct{}
	i = skipSpace(b, i+1)
	for b[i] != '}' {
		end := endOfString(b, i)
		key, err := unquote(b[i:end])
		if err != nil {
			return nil, err
		}
		if max > 0 && len(fields) >= max {
			return nil, fmt.Errorf("more than %d fields", max)
		}
		// Few fields: compare; many: index them.
		dup := false
		if seen == nil && len(fields) < 16 {
			for _, f := range fields {
				dup = dup || f.key == key
			}
		} else {
			if seen == nil {
				seen = make(map[string]struct{}, 2*len(fields))
				for _, f := range fields {
					seen[f.key] = struct{}{}
				}
			}
			_, dup = seen[key]
			seen[key] = struct{}{}
		}
		if dup {
			return nil, fmt.Errorf("duplicate field %q", truncate(key))
		}
		i = skipSpace(b, skipSpace(b, end)+1) // past the colon
		vend := endOfValue(b, i)
		fields = append(fields, field{key: key, val: b[i:vend]})
		i = skipSpace(b, vend)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return fields, nil
}

// arrayElems splits a valid JSON value, which must be an array, into its
// elements. They share raw's memory.
func arrayElems(raw []byte) ([][]byte, error) {
	i := skipSpace(raw, 0)
	if raw[i] != '[' {
		return nil, errors.New("not an array")
	}
	var elems [][]byte
	i = skipSpace(raw, i+1)
	for raw[i] != ']' {
		end := endOfValue(raw, i)
		elems = append(elems, raw[i:end])
		i = skipSpace(raw, end)
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the string starting at b[i].
func endOfString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// endOfValue returns the index just past the value starting at b[i].
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = endOfString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // number, true, false, null
		for i < len(b) && !(b[i] == ',' || b[i] == '}' || b[i] == ']' || b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
		return i
	}
}

// unquote returns the text of a valid JSON string, refusing one with a
// lone surrogate escape, which has no text to return.
func unquote(q []byte) (string, error) {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1]), nil
	}
	sc := scanner{b: q, strict: true}
	if _, _, err := sc.str(0); err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return "", err
	}
	return s, nil
}

// decodeString decodes a field that must be a string.
func decodeString(raw []byte) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", errors.New("not a string")
	}
	return unquote(raw)
}

// decodeUint accepts a JSON number that is an integer in uint64 range,
// written without fraction or exponent.
func decodeUint(raw json.RawMessage) (uint64, error) {
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' {
		return 0, errors.New("not a non-negative integer")
	}
	v, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		return 0, errors.New("not an integer in the range of uint64")
	}
	return v, nil
}

func validMessageID(id string) error {
	if id == "" || len(id) > MaxMessageIDLen {
		return fmt.Errorf("must be 1-%d bytes, got %d", MaxMessageIDLen, len(id))
	}
	return nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func badMessagef(id, format string, args ...any) *MessageError {
	return &MessageError{ID: id, Err: fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)}
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

// ServerMessage is any server → client message decoded into one struct,
// for Go clients such as the bench tool and tests (servers encode with the
// Encode functions and fanout.Frame.WS instead). Type says which fields
// are meaningful:
//
//   - reset: Collection, Epoch, Version, Reset, Records
//   - commit: Collection, Epoch, Version, At, Ops
//   - catchup: Collection, Epoch, Version, Compacted, Records, Deleted
//   - result: ID, Result, Versions
//   - error: ID (when the message answered had one), Code, Message
type ServerMessage struct {
	Type       string            `json:"type"`
	ID         string            `json:"id"`
	Collection string            `json:"collection"`
	Epoch      string            `json:"epoch"`
	Version    uint64            `json:"version"`
	At         time.Time         `json:"at"`
	Ops        []Op              `json:"ops"`
	Reset      bool              `json:"reset"`
	Compacted  bool              `json:"compacted"`
	Records    []Record          `json:"records"`
	Deleted    []string          `json:"deleted"`
	Result     json.RawMessage   `json:"result"`
	Versions   map[string]uint64 `json:"versions"`
	Code       Code              `json:"code"`
	Message    string            `json:"message"`
}

// DecodeServerMessage decodes a server → client message. It is lenient
// (unknown fields are ignored, so newer servers can add some) but requires
// a known type.
func DecodeServerMessage(b []byte) (ServerMessage, error) {
	var m ServerMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return ServerMessage{}, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	switch m.Type {
	case TypeReset, TypeCommit, TypeCatchUp, TypeResult, TypeError:
		return m, nil
	}
	return ServerMessage{}, fmt.Errorf("%w: unknown server message type %q", ErrBadMessage, truncate(m.Type))
}

// DecodeCommitRequest decodes the body of POST /v1/collections/{c}/commits,
// {"ops":[…],"if":{…}}, as strictly as a WebSocket commit message: one
// UTF-8 JSON object, case-sensitive keys, no repeated or unknown fields,
// "ops" required (an array of {"op","id","value"?}), "if" optional.
// Errors wrap ErrBadMessage.
func DecodeCommitRequest(b []byte) (CommitRequest, error) {
	fields, err := parseMessage(b)
	if err != nil {
		return CommitRequest{}, &MessageError{Err: fmt.Errorf("%w: commit body: %w", ErrBadMessage, err)}
	}
	d := decoder{fields: fields, typ: "commit body"}
	var req CommitRequest
	if raw, ok := d.raw("ops", true); ok {
		if req.Ops, err = decodeOps(raw); err != nil {
			d.fail("field %q: %v", "ops", err)
		}
	}
	if raw, ok := d.raw("if", false); ok {
		if req.If, err = decodeIfs(raw); err != nil {
			d.fail("field %q: %v", "if", err)
		}
	}
	if _, ok := fields.get("type"); ok {
		d.fail("unknown field %q", "type")
	}
	d.done()
	if d.err != nil {
		return CommitRequest{}, d.err
	}
	if len(req.If) == 0 {
		req.If = nil // "if":{} says no more than no "if"
	}
	return req, nil
}

// DecodeCallRequest decodes the body of POST /v1/calls/{name}, {"arg":…},
// as strictly as a WebSocket call message: one UTF-8 JSON object whose
// only field is "arg", spelled exactly so and not repeated, keeping the
// value rules (see Limits.CheckValue) everywhere. A missing arg is null;
// the arg is returned as sent, not compacted. Errors wrap ErrBadMessage.
func DecodeCallRequest(b []byte) (json.RawMessage, error) {
	fields, err := parseMessage(b)
	if err != nil {
		return nil, &MessageError{Err: fmt.Errorf("%w: call body: %w", ErrBadMessage, err)}
	}
	d := decoder{fields: fields, typ: "call body"}
	arg, ok := d.raw("arg", false)
	if !ok {
		arg = json.RawMessage("null")
	}
	if _, ok := fields.get("type"); ok {
		d.fail("unknown field %q (the only field is \"arg\")", "type")
	}
	d.done()
	if d.err != nil {
		return nil, d.err
	}
	return bytes.Clone(arg), nil
}
