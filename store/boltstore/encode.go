package boltstore

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/viewsync/viewsync/protocol"
)

// The log holds each commit as the JSON encoding/json gives protocol.Commit,
// byte for byte. It is built in two steps so that the costly part stays out
// of the committer: Apply encodes the ops in the caller's goroutine
// (appendOps), and the committer, once it knows the version and the time,
// wraps them (appendCommit).

// appendOps appends the JSON array of ops. Values are copied as they are:
// the caller has checked that each is valid JSON, and compact JSON (as
// protocol.NormalizeOp makes it) is what encoding/json would write.
func appendOps(b []byte, ops []protocol.Op) []byte {
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

// commitJSONLen is the most appendCommit adds around the ops: the field
// names, a 20-digit version and a 35-byte RFC 3339 time.
const commitJSONLen = len(`{"version":,"at":"","ops":}`) + 20 + len(time.RFC3339Nano)

// appendCommit appends the JSON of the commit with the given version, time
// and ops already encoded by appendOps.
func appendCommit(b []byte, version uint64, at time.Time, ops []byte) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"at":"`...)
	b = at.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","ops":`...)
	b = append(b, ops...)
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
