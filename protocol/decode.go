package protocol

import (
	"fmt"
	"time"
)

// DecodeCommit decodes a commit as AppendCommit or encoding/json writes it,
// {"version":V,"at":T,"ops":[…]}, for a store reading its own log. Unlike
// encoding/json, it bounds no nesting: a value that encoding/json accepts
// alone (values were written before the value rules bounded their depth)
// sits three levels deeper in its commit, past encoding/json's limit, and
// must still be read back. Values are copied as they are. Unknown fields
// are ignored. Errors wrap ErrBadValue.
func DecodeCommit(b []byte) (Commit, error) {
	if err := scanJSON(b, 0, false); err != nil {
		return Commit{}, fmt.Errorf("commit: %w", err)
	}
	fields, err := objectFields(b, 0)
	if err != nil {
		return Commit{}, fmt.Errorf("%w: commit: %v", ErrBadValue, err)
	}
	var c Commit
	for _, f := range fields {
		switch f.key {
		case "version":
			if c.Version, err = decodeUint(f.val); err != nil {
				return Commit{}, fmt.Errorf("%w: commit: field %q: %v", ErrBadValue, f.key, err)
			}
		case "at":
			s, err := decodeString(f.val)
			if err == nil {
				c.At, err = time.Parse(time.RFC3339Nano, s)
			}
			if err != nil {
				return Commit{}, fmt.Errorf("%w: commit: field %q: %v", ErrBadValue, f.key, err)
			}
		case "ops":
			if string(f.val) == "null" {
				continue
			}
			if c.Ops, err = decodeOps(f.val); err != nil {
				return Commit{}, fmt.Errorf("%w: commit: field %q: %v", ErrBadValue, f.key, err)
			}
		}
	}
	return c, nil
}
