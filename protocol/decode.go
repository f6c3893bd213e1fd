package protocol

import (
	"bytes"
	"encoding/json"

	"fmt"
	"time"
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
	// ID is the id of the message when it carried a valid one, whatever
	// its type, so that the error can answer it; zero otherwise.
	ID MessageID
	// Err says what is wrong.
	Err error
}

// Error implements error.
func (e *MessageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *MessageError) Unwrap() error { return e.Err }

// DecodeClientMessage decodes one client → server message strictly: the
// input must be one JSON object in UTF-8 with nothing after it, its "type"
// one of the six, every field of that type that is not optional present
// with the right JSON type, and no other field. Keys are matched exactly
// (case-sensitive) and may not repeat; null is not accepted for a field
// (omit an optional one instead), except as the value of "arg". An id is
// a string or a number within the bounds of MessageID, kept as sent;
// collection and call names and epochs are validated. Ops are checked for
// shape only.
//
// Errors are *MessageError, wrapping ErrBadMessage.
func DecodeClientMessage(b []byte) (ClientMessage, error) {
	fields, err := parseMessage(b)
	if fields == nil {
		return nil, &MessageError{Err: fmt.Errorf("%w: %w", ErrBadMessage, err)}
	}
	// The id, when valid, goes with any error, so that it can answer it.
	var id MessageID
	if raw, ok := fields.get("id"); ok {
		if v, err := parseMessageID(raw); err == nil {
			id = v
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
	case TypePresence:
		m = d.presence()
	default:
		return nil, badMessagef(id, "unknown type %q (want subscribe, unsubscribe, call, commit, ack or presence)", truncate(typ))
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
	id     MessageID
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

func (d *decoder) messageID() MessageID {
	raw, ok := d.raw("id", true)
	if !ok {
		return MessageID{}
	}
	id, err := parseMessageID(raw)
	if err != nil {
		d.fail("field %q: %v", "id", err)
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

// sub reads the optional subscription id.
func (d *decoder) sub() string {
	s, ok := d.string("sub", false)
	if ok {
		if err := ValidateSubID(s); err != nil {
			d.failWrap("sub", err)
		}
	}
	return s
}

func (d *decoder) subscribe() ClientMessage {
	m := &SubscribeMessage{Collection: d.collection(), Sub: d.sub()}
	if raw, ok := d.raw("where", false); ok && string(raw) != "null" {
		if len(raw) == 0 || raw[0] != '{' {
			d.fail("field %q: a filter is a JSON object", "where")
		}
		m.Where = bytes.Clone(raw)
	}
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
	if raw, ok := d.raw("presence", false); ok {
		switch string(raw) {
		case "true":
			m.Presence = true
		case "false":
		default:
			d.fail(`field "presence": a boolean`)
		}
	}
	d.done()
	return m
}

func (d *decoder) unsubscribe() ClientMessage {
	m := &UnsubscribeMessage{Collection: d.collection(), Sub: d.sub()}
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
	m.IdempotencyKey, _ = d.string("idempotencyKey", false)
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
	m.IdempotencyKey, _ = d.string("idempotencyKey", false)
	d.done()
	return m
}

func (d *decoder) ack() ClientMessage {
	m := &AckMessage{Collection: d.collection(), Sub: d.sub()}
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

// maxFields bounds the fields of a message and of an op, which have a
// handful each; preconditions ("if") are bounded by the message size alone.
const maxFields = 64

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

func badMessagef(id MessageID, format string, args ...any) *MessageError {
	return &MessageError{ID: id, Err: fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)}
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

// DecodeCommit decodes a commit as AppendCommit or encoding/json writes it,
// {"version":V,"at":T,"ops":[…]}, for a store reading its own log. Unlike
// encoding/json, it bounds no nesting: a value that encoding/json accepts
// alone (values were written before the value rules bounded their depth)
// sits three levels deeper in its commit, past encoding/json's limit, and
// must still be read back. Values are copied as they are. Unknown fields
// are ignored. Errors wrap ErrBadValue.
func DecodeCommit(b []byte) (Commit, error) {
	c, _, err := decodeCommit(b, false)
	return c, err
}

// DecodeLogEntry decodes a log entry as AppendLogEntry writes it, as
// DecodeCommit does, and returns its prev values too: nil where the entry
// has none (written without them), else one per op, nil where the record
// did not exist.
func DecodeLogEntry(b []byte) (Commit, []json.RawMessage, error) {
	return decodeCommit(b, true)
}

// decodeCommit decodes a commit or, with withPrev, a log entry.
func decodeCommit(b []byte, withPrev bool) (Commit, []json.RawMessage, error) {
	if err := scanJSON(b, 0, false); err != nil {
		return Commit{}, nil, fmt.Errorf("commit: %w", err)
	}
	fields, err := objectFields(b, 0)
	if err != nil {
		return Commit{}, nil, fmt.Errorf("%w: commit: %v", ErrBadValue, err)
	}
	var c Commit
	var prev []json.RawMessage
	bad := func(key string, err error) (Commit, []json.RawMessage, error) {
		return Commit{}, nil, fmt.Errorf("%w: commit: field %q: %v", ErrBadValue, key, err)
	}
	for _, f := range fields {
		switch f.key {
		case "version":
			if c.Version, err = decodeUint(f.val); err != nil {
				return bad(f.key, err)
			}
		case "after":
			after, err := decodeUint(f.val)
			if err != nil {
				return bad(f.key, err)
			}
			c.After = &after
		case "at":
			s, err := decodeString(f.val)
			if err == nil {
				c.At, err = time.Parse(time.RFC3339Nano, s)
			}
			if err != nil {
				return bad(f.key, err)
			}
		case "ops":
			if string(f.val) == "null" {
				continue
			}
			if c.Ops, err = decodeOps(f.val); err != nil {
				return bad(f.key, err)
			}
		case "prev":
			if !withPrev {
				continue
			}
			elems, err := arrayElems(f.val)
			if err != nil {
				return bad(f.key, err)
			}
			prev = make([]json.RawMessage, len(elems))
			for i, e := range elems {
				v, err := arrayElems(e)
				if err != nil || len(v) > 1 {
					return bad(f.key, fmt.Errorf("value %d is not [] or [value]", i))
				}
				if len(v) == 1 {
					prev[i] = bytes.Clone(v[0])
				}
			}
		}
	}
	if prev != nil && len(prev) != len(c.Ops) {
		return bad("prev", fmt.Errorf("%d values for %d ops", len(prev), len(c.Ops)))
	}
	return c, prev, nil
}

// ServerMessage is any server → client message decoded into one struct,
// for Go clients such as the bench tool and tests (servers encode with the
// Encode functions instead). Type says which fields are meaningful:
//
//   - reset: Collection, Sub, Epoch, Version, Reset, Records
//   - commit: Collection, Sub, Epoch, Version, After (a filtered view's), At, Ops
//   - catchup: Collection, Sub, Epoch, Version, Compacted, Records, Deleted
//   - progress: Collection, Sub, Epoch, Version (a filtered view's cursor moved)
//   - result: ID, Result, Versions
//   - error: ID (when the message answered had one), Sub (answering a
//     subscribe that named one), Code, Message
//   - presence: Collection, Sub, Event (sync, join, update, leave, count),
//     Member, Record, State (join, update), Members, Count, Self, Session,
//     TTL (sync), Count (count)
type ServerMessage struct {
	Type       string            `json:"type"`
	ID         MessageID         `json:"id"`
	Collection string            `json:"collection"`
	Sub        string            `json:"sub"`
	Epoch      string            `json:"epoch"`
	Version    uint64            `json:"version"`
	After      *uint64           `json:"after"`
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
	// Replayed marks a result or error given before to the same
	// idempotency key: nothing ran again (see MarkReplayed).
	Replayed bool `json:"replayed"`

	Event   string           `json:"event"`
	Member  string           `json:"member"`
	Record  string           `json:"record"`
	State   json.RawMessage  `json:"state"`
	Members []PresenceMember `json:"members"`
	Count   int              `json:"count"`
	Self    string           `json:"self"`
	Session string           `json:"session"`
	// TTL is in milliseconds.
	TTL int64 `json:"ttl"`
}

// PresenceMember is one member of a presence sync.
type PresenceMember struct {
	Member string          `json:"member"`
	Record string          `json:"record,omitempty"`
	State  json.RawMessage `json:"state"`
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
	case TypeReset, TypeCommit, TypeCatchUp, TypeProgress, TypeResult, TypeError, TypePresence:
		return m, nil
	}
	return ServerMessage{}, fmt.Errorf("%w: unknown server message type %q", ErrBadMessage, truncate(m.Type))
}
