package protocol

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// A commit's JSON, written without encoding/json: the same bytes encoding/json
// gives Commit, except that values are copied as they are (encoding/json
// would escape <, > and & inside them, and check and compact them again).
// It can be built in two steps, so that a store encodes the ops before it
// knows the version and time (AppendOps), and wraps them after
// (AppendCommitOps); AppendCommit does both.

// AppendOps appends the JSON array of ops. Values are copied as they are:
// each must be compact, valid JSON, as NormalizeOp makes it.
func AppendOps(b []byte, ops []Op) []byte {
	b = append(b, '[')
	for i := range ops {
		op := &ops[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"op":`...)
		b = appendString(b, string(op.Op))
		b = append(b, `,"id":`...)
		b = appendString(b, op.ID)
		if len(op.Value) > 0 {
			b = append(b, `,"value":`...)
			b = append(b, op.Value...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// CommitJSONOverhead is the most AppendCommitOps adds around the ops: the
// field names, a 20-digit version and a 35-byte RFC 3339 time.
const CommitJSONOverhead = len(`{"version":,"at":"","ops":}`) + 20 + len(time.RFC3339Nano)

// OpJSONOverhead is what AppendOps adds around one op's id and value: the
// field names, quotes and separators.
const OpJSONOverhead = len(`{"op":"delete","id":"","value":},`)

// CommitSize is the size of c's JSON as AppendCommit writes it, within
// the escaping of ids: what a commit weighs in a page of history and in
// memory bounds.
func CommitSize(c Commit) int {
	n := CommitJSONOverhead + 2
	if c.After != nil {
		n += len(`,"after":`) + 20
	}
	for i := range c.Ops {
		n += OpJSONOverhead + len(c.Ops[i].ID) + len(c.Ops[i].Value)
	}
	return n
}

// RecordsSize is about the size of the JSON of records: what they weigh in
// memory bounds.
func RecordsSize(records []Record) int {
	n := 0
	for i := range records {
		n += len(`{"id":"","value":,"version":18446744073709551615},`) + len(records[i].ID) + len(records[i].Value)
	}
	return n
}

// IDsSize is about the size of the JSON array of ids.
func IDsSize(ids []string) int {
	n := 0
	for _, id := range ids {
		n += len(`"",`) + len(id)
	}
	return n
}

// AppendCommitOps appends the JSON of the commit with the given version,
// time and ops already encoded by AppendOps.
func AppendCommitOps(b []byte, version uint64, at time.Time, ops []byte) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"at":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","ops":`...)
	b = append(b, ops...)
	return append(b, '}')
}

// AppendLogEntry appends a log entry: the JSON of the commit with the
// given version, time and ops (encoded by AppendOps) and "prev", for each
// op the value its record had just before it, as [value], or [] where it
// did not exist (a value may be null). A store keeps a commit so that
// whoever reads it back has the values it replaced without the records
// (see DecodeLogEntry).
func AppendLogEntry(b []byte, version uint64, at time.Time, ops []byte, prev []json.RawMessage) []byte {
	b = AppendCommitOps(b, version, at, ops)
	b = append(b[:len(b)-1], `,"prev":[`...)
	for i, v := range prev {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = append(b, v...)
		b = append(b, ']')
	}
	return append(b, "]}"...)
}

// AppendCommit appends the JSON of c; its values must be compact, valid
// JSON, as NormalizeOp makes them.
func AppendCommit(b []byte, c Commit) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendUint(b, c.Version, 10)
	if c.After != nil {
		b = append(b, `,"after":`...)
		b = strconv.AppendUint(b, *c.After, 10)
	}
	b = append(b, `,"at":"`...)
	b = c.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","ops":`...)
	b = AppendOps(b, c.Ops)
	return append(b, '}')
}

// appendString appends s as a JSON string the way encoding/json writes it.
// Strings of printable ASCII that need no escaping, the usual ids, take the
// fast path.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				// Marshal of a string cannot fail.
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
