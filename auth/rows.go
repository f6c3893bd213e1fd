package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/viewsync/viewsync/filter"
)

// RowRight grants an action on the records of the collections matching a
// pattern that match a filter. In the rights claim it is an object in the
// read or write list: {"collection": "orders", "where": {"owner": "alice"}}.
type RowRight struct {
	// Collection is a pattern of collection names, as in Rights.Read.
	Collection string `json:"collection"`
	// Where selects the records (see package filter). A row right without
	// one grants no record: Validate refuses it.
	Where *filter.Filter `json:"where"`
}

// errRowFields is the error of a row right object with a field other than
// collection and where.
var errRowFields = errors.New(`a row right has the fields "collection" and "where" only`)

// UnmarshalJSON reads a row right strictly: an object with exactly the
// fields "collection" (a valid pattern) and "where" (a filter, read by
// filter.Parse within the default limits), spelt so and not repeated.
func (rr *RowRight) UnmarshalJSON(b []byte) error {
	fields, err := objectFields(b)
	if err != nil {
		return err
	}
	var out RowRight
	for _, f := range fields {
		switch f.name {
		case "collection":
			if err := json.Unmarshal(f.value, &out.Collection); err != nil {
				return errors.New(`"collection" is not a string`)
			}
			if err := validatePattern(out.Collection); err != nil {
				return fmt.Errorf("collection %q: %w", out.Collection, err)
			}
		case "where":
			if bytes.Equal(f.value, []byte("null")) {
				return errors.New(`"where" is null; a row right needs a filter`)
			}
			w, err := filter.Parse(f.value, filter.Limits{})
			if err != nil {
				return fmt.Errorf("where: %w", err)
			}
			out.Where = w
		default:
			return fmt.Errorf("unknown field %q: %w", f.name, errRowFields)
		}
	}
	switch {
	case out.Collection == "":
		return errors.New(`no "collection"`)
	case out.Where == nil:
		return errors.New(`no "where"; a right on the whole collection is a pattern string`)
	}
	*rr = out
	return nil
}

// field is a member of a JSON object.
type field struct {
	name  string
	value json.RawMessage
}

// objectFields returns the members of the JSON object b, refusing a
// repeated name.
func objectFields(b []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var fields []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("not a JSON object")
		}
		for _, f := range fields {
			if f.name == name {
				return nil, fmt.Errorf("repeated field %q", name)
			}
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		fields = append(fields, field{name, v})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return fields, nil
}

// validate checks the row right.
func (rr RowRight) validate() error {
	if err := validatePattern(rr.Collection); err != nil {
		return fmt.Errorf("collection %q: %w", rr.Collection, err)
	}
	if rr.Where == nil {
		return errors.New(`no where filter; a right on the whole collection is a pattern`)
	}
	return nil
}

// rightsJSON is the JSON form of Rights: in read and write, strings
// (patterns) and objects (row rights) mixed.
type rightsJSON struct {
	Read  []json.RawMessage `json:"read,omitempty"`
	Write []json.RawMessage `json:"write,omitempty"`
	Call  []string          `json:"call,omitempty"`
}

// MarshalJSON writes the rights as the claim holds them: in "read" and
// "write", the patterns then the row rights.
func (r Rights) MarshalJSON() ([]byte, error) {
	var out rightsJSON
	var err error
	if out.Read, err = joinRights(r.Read, r.ReadRows); err != nil {
		return nil, fmt.Errorf("read rights: %w", err)
	}
	if out.Write, err = joinRights(r.Write, r.WriteRows); err != nil {
		return nil, fmt.Errorf("write rights: %w", err)
	}
	out.Call = r.Call
	return json.Marshal(out)
}

func joinRights(patterns []string, rows []RowRight) ([]json.RawMessage, error) {
	if len(patterns) == 0 && len(rows) == 0 {
		return nil, nil
	}
	out := make([]json.RawMessage, 0, len(patterns)+len(rows))
	for _, p := range patterns {
		out = append(out, json.RawMessage(strconv.Quote(p)))
	}
	for _, rr := range rows {
		b, err := json.Marshal(rr)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// UnmarshalJSON reads rights as the claim holds them: in "read" and
// "write", pattern strings (into Read and Write) and row right objects
// (into ReadRows and WriteRows) mixed; in "call", pattern strings. As with
// a malformed pattern, an entry of read or write that is neither a string
// nor a valid row right object does not fail the reading: Validate
// reports it, naming the entry.
func (r *Rights) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	var in rightsJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	out := Rights{Call: in.Call}
	out.Read, out.ReadRows, out.invalid = splitRights(Read, in.Read)
	var invalid error
	out.Write, out.WriteRows, invalid = splitRights(Write, in.Write)
	if out.invalid == nil {
		out.invalid = invalid
	}
	*r = out
	return nil
}

// splitRights sorts the entries of a read or write list into patterns
// and row rights; invalid is the first entry that is neither.
func splitRights(a Action, raw []json.RawMessage) (patterns []string, rows []RowRight, invalid error) {
	if raw != nil && len(raw) == 0 {
		patterns = []string{}
	}
	for i, e := range raw {
		switch e = bytes.TrimSpace(e); {
		case len(e) > 0 && e[0] == '"':
			var p string
			if err := json.Unmarshal(e, &p); err != nil && invalid == nil {
				invalid = fmt.Errorf("%s right %d: %w", a, i, err)
			}
			patterns = append(patterns, p)
		case len(e) > 0 && e[0] == '{':
			var rr RowRight
			if err := rr.UnmarshalJSON(e); err != nil {
				if invalid == nil {
					invalid = fmt.Errorf("%s right %d (a row right): %w", a, i, err)
				}
				continue
			}
			rows = append(rows, rr)
		default:
			if invalid == nil {
				invalid = fmt.Errorf(`%s right %d: want a pattern string or a row right {"collection": PATTERN, "where": FILTER}`, a, i)
			}
		}
	}
	return patterns, rows, invalid
}

// Filter returns the filter the rights put on action a over the
// collection name: nil and false when a pattern of a matches name (every
// record); else, when row rights of a match name, the disjunction of their
// filters (filter.Or) and true; else nil and false, the rights not
// allowing a on name at all (see Allows, which callers check first). A
// row right without Where adds no record. Call rights have no rows.
func (r Rights) Filter(a Action, name string) (f *filter.Filter, restricted bool) {
	rows := r.rows(a)
	if len(rows) == 0 || r.allowsAll(a, name) {
		return nil, false
	}
	var fs []*filter.Filter
	matched := false
	for _, rr := range rows {
		if !Match(rr.Collection, name) {
			continue
		}
		matched = true
		if rr.Where != nil {
			fs = append(fs, rr.Where)
		}
	}
	if !matched {
		return nil, false
	}
	return filter.Or(fs...), true
}

// Filter returns the filter p's rights put on a over name: see
// Rights.Filter.
func (p Principal) Filter(a Action, name string) (*filter.Filter, bool) {
	return p.Rights.Filter(a, name)
}
