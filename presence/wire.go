package presence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// The bus's messages are JSON objects, version 1:
//
//	{"v":1,"node":N,"c":COLLECTION,"ttl":MS,"set":[{"m":MEMBER,"r"?:RECORD,"s":STATE,"t":UNIXNANO},…],"leave"?:[MEMBER,…]}
//	{"v":1,"node":N,"hello":true}
//	{"v":1,"node":N,"bye":true}
//
// A set lists node N's presence of members in the collection (joins,
// changes and refreshes alike: the receiver keeps each for ttl
// milliseconds), a leave the members N no longer has there; a hello asks
// every node to publish its members now; a bye says N's members are all
// gone. Fields a receiver does not know are ignored; another version is
// dropped.

// busVersion is the wire version written and read.
const busVersion = 1

// Bounds of what a message may say.
const (
	maxNodeLen   = 64
	maxMemberLen = 64
	minBusTTL    = time.Millisecond
	maxBusTTL    = time.Hour
)

// errBusMessage: a bus message that cannot be applied.
var errBusMessage = errors.New("presence: bad bus message")

// busItem is one member's presence on the node that sent it.
type busItem struct {
	member string
	record string
	state  json.RawMessage
	at     int64
}

// busMessage is a decoded bus message.
type busMessage struct {
	node string
	// kind is "hello", "bye", or "" for a collection's members.
	kind       string
	collection string
	ttl        time.Duration
	items      []busItem
	leaves     []string
}

// wireMessage and wireItem are the JSON a message decodes from.
type wireMessage struct {
	V     int        `json:"v"`
	Node  string     `json:"node"`
	Hello bool       `json:"hello"`
	Bye   bool       `json:"bye"`
	C     string     `json:"c"`
	TTL   int64      `json:"ttl"`
	Set   []wireItem `json:"set"`
	Leave []string   `json:"leave"`
}

type wireItem struct {
	M string          `json:"m"`
	R string          `json:"r"`
	S json.RawMessage `json:"s"`
	T int64           `json:"t"`
}

// decodeBusMessage decodes and checks msg: a state must be a JSON object
// of at most maxState bytes once compact (it is returned compact), ids
// and names valid.
func decodeBusMessage(msg []byte, maxState int) (*busMessage, error) {
	var w wireMessage
	if err := json.Unmarshal(msg, &w); err != nil {
		return nil, fmt.Errorf("%w: %w", errBusMessage, err)
	}
	if w.V != busVersion {
		return nil, fmt.Errorf("%w: version %d", errBusMessage, w.V)
	}
	if !validToken(w.Node, maxNodeLen) {
		return nil, fmt.Errorf("%w: node %q", errBusMessage, w.Node)
	}
	m := &busMessage{node: w.Node}
	switch {
	case w.Hello && w.Bye:
		return nil, fmt.Errorf("%w: hello and bye", errBusMessage)
	case w.Hello || w.Bye:
		if w.C != "" || w.Set != nil || w.Leave != nil {
			return nil, fmt.Errorf("%w: a node message with members", errBusMessage)
		}
		m.kind = "bye"
		if w.Hello {
			m.kind = "hello"
		}
		return m, nil
	}
	if err := protocol.ValidateCollection(w.C); err != nil {
		return nil, fmt.Errorf("%w: %w", errBusMessage, err)
	}
	m.collection = w.C
	m.ttl = time.Duration(w.TTL) * time.Millisecond
	if w.TTL <= 0 || m.ttl < minBusTTL || m.ttl > maxBusTTL {
		return nil, fmt.Errorf("%w: ttl %d ms", errBusMessage, w.TTL)
	}
	m.items = make([]busItem, 0, len(w.Set))
	for _, it := range w.Set {
		if !validToken(it.M, maxMemberLen) {
			return nil, fmt.Errorf("%w: member %q", errBusMessage, it.M)
		}
		if it.R != "" {
			if err := protocol.ValidateID(it.R, 0); err != nil {
				return nil, fmt.Errorf("%w: record: %w", errBusMessage, err)
			}
		}
		if it.T <= 0 {
			return nil, fmt.Errorf("%w: time %d", errBusMessage, it.T)
		}
		var state bytes.Buffer
		if err := json.Compact(&state, it.S); err != nil || state.Len() == 0 || state.Bytes()[0] != '{' || state.Len() > maxState {
			return nil, fmt.Errorf("%w: state of %s: not a JSON object of at most %d bytes", errBusMessage, it.M, maxState)
		}
		m.items = append(m.items, busItem{member: it.M, record: it.R, state: state.Bytes(), at: it.T})
	}
	for _, id := range w.Leave {
		if !validToken(id, maxMemberLen) {
			return nil, fmt.Errorf("%w: member %q", errBusMessage, id)
		}
	}
	m.leaves = w.Leave
	return m, nil
}

// validToken reports whether s is 1 to max characters of [A-Za-z0-9_-],
// as node and member ids are: they go to clients unescaped.
func validToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// appendNodeMessage appends node's message of kind "hello" or "bye".
func appendNodeMessage(dst []byte, node, kind string) []byte {
	dst = append(dst, `{"v":1,"node":"`...)
	dst = append(dst, node...)
	dst = append(dst, `","`...)
	dst = append(dst, kind...)
	return append(dst, `":true}`...)
}

// splitMessages yields node's messages about collection saying items and
// leaves, each filled to about MaxBusMessageBytes; none when there is
// nothing to say.
func splitMessages(node, collection string, ttlMS int64, items []busItem, leaves []string) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		var head []byte
		head = append(head, `{"v":1,"node":"`...)
		head = append(head, node...)
		head = append(head, `","c":"`...)
		head = append(head, collection...)
		head = append(head, `","ttl":`...)
		head = strconv.AppendInt(head, ttlMS, 10)
		var msg []byte
		// open is the array being written, "set" or "leave"; listed counts
		// what msg lists.
		var open string
		var listed int
		begin := func() {
			msg = append(msg[:0:0], head...)
			open, listed = "", 0
		}
		finish := func() bool {
			if open != "" {
				msg = append(msg, ']')
			}
			return yield(append(msg, '}'))
		}
		add := func(array string, size int, write func()) bool {
			if listed > 0 && len(msg)+size > MaxBusMessageBytes {
				if !finish() {
					return false
				}
				begin()
			}
			if open != array {
				if open != "" {
					msg = append(msg, ']')
				}
				msg = append(msg, `,"`...)
				msg = append(msg, array...)
				msg = append(msg, `":[`...)
				open = array
			} else {
				msg = append(msg, ',')
			}
			write()
			listed++
			return true
		}
		begin()
		for i := range items {
			it := &items[i]
			// A record's JSON string is at most six bytes a byte.
			if !add("set", len(it.member)+6*len(it.record)+len(it.state)+64, func() { msg = appendItem(msg, it) }) {
				return
			}
		}
		for _, id := range leaves {
			if !add("leave", len(id)+4, func() {
				msg = append(msg, '"')
				msg = append(msg, id...)
				msg = append(msg, '"')
			}) {
				return
			}
		}
		if listed > 0 {
			finish()
		}
	}
}

// appendItem appends one member's presence.
func appendItem(dst []byte, it *busItem) []byte {
	dst = append(dst, `{"m":"`...)
	dst = append(dst, it.member...)
	dst = append(dst, '"')
	if it.record != "" {
		dst = append(dst, `,"r":`...)
		rec, _ := json.Marshal(it.record) // a string: always encodes
		dst = append(dst, rec...)
	}
	dst = append(dst, `,"s":`...)
	dst = append(dst, it.state...)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, it.at, 10)
	return append(dst, '}')
}
