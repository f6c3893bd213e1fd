package filter

import (
	"encoding/json"
	"strings"
)

// Doc is a record read once, to be matched against many filters. It is
// immutable and safe for concurrent use.
type Doc struct {
	id string
	// s holds the decoded strings of the value, then its canonical
	// encoding, then the id's.
	s string
	// nodes is the value, nodes[0] its root; nil when there is none.
	nodes []node
	// idAt is where the id's canonical encoding starts in s.
	idAt int
}

// NewDoc reads the record id with the given value. An empty or nil value
// (a deleted record), or one that is not valid JSON, makes a Doc that
// matches no filter at all, not even {}.
func NewDoc(id string, value json.RawMessage) *Doc {
	d := &Doc{id: id}
	s := getScanner(value, false)
	if len(value) > 0 {
		d.nodes = s.read()
	}
	if d.nodes == nil {
		s.buf = s.buf[:0]
	}
	d.idAt = len(s.buf)
	s.buf = appendQuoted(s.buf, id)
	d.s = string(s.buf)
	putScanner(s)
	return d
}

// exists reports whether the record has a value.
func (d *Doc) exists() bool { return d != nil && d.nodes != nil }

// object reports whether the record's value is a JSON object.
func (d *Doc) object() bool { return d.exists() && d.nodes[0].kind == kindObject }

// At returns the canonical encoding of the JSON value at a dotted path in
// the record's value ("owner.id": the member "id" of the object that is
// the member "owner"), the encoding Filter.Key uses for values: numbers
// in one spelling for each value, objects with their keys sorted. The
// path "$id" gives the record's id as a JSON string. ok is false when the
// path leads nowhere: the member is absent, the path crosses a value that
// is not an object, the record has no value or its value is not an
// object.
func (d *Doc) At(path string) (canonical string, ok bool) {
	if path == idPath {
		return d.s[d.idAt:], true
	}
	if !d.object() || path == "" {
		return "", false
	}
	n := int32(0)
	for {
		seg, rest, more := strings.Cut(path, ".")
		if seg == "" {
			return "", false
		}
		if n = d.member(n, seg); n < 0 {
			return "", false
		}
		if !more {
			break
		}
		path = rest
	}
	nd := &d.nodes[n]
	return d.s[nd.start:nd.end], true
}

// member returns the index of the member key of the object node n, or -1
// when n is not an object or has no such member.
func (d *Doc) member(n int32, key string) int32 {
	nd := &d.nodes[n]
	if nd.kind != kindObject {
		return -1
	}
	lo, hi := nd.a, nd.a+nd.b
	for lo < hi {
		m := int32(uint32(lo+hi) >> 1)
		if d.s[d.nodes[m].k0:d.nodes[m].k1] < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < nd.a+nd.b && d.s[d.nodes[lo].k0:d.nodes[lo].k1] == key {
		return lo
	}
	return -1
}

// lookup returns the node at the path segs, or -1; the record's value
// must be an object.
func (d *Doc) lookup(segs []string) int32 {
	n := int32(0)
	for _, seg := range segs {
		if n = d.member(n, seg); n < 0 {
			return -1
		}
	}
	return n
}
