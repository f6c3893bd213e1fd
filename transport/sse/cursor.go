package sse

import (
	"fmt"
	"net/url"

	"github.com/viewsync/viewsync/protocol"
)

// parseCursor returns the cursor a stream resumes from: the Last-Event-ID
// header (its values as sent) when present and not empty, else the after
// and epoch query parameters. Both are checked, so a malformed one is
// refused even when the other wins. A nil cursor without error means none
// was given: the stream starts with a reset. Errors wrap
// protocol.ErrBadCursor.
func parseCursor(lastEventID []string, q url.Values) (*protocol.Cursor, error) {
	query, err := queryCursor(q)
	if err != nil {
		return nil, err
	}
	switch len(lastEventID) {
	case 0:
		return query, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: Last-Event-ID given %d times", protocol.ErrBadCursor, len(lastEventID))
	}
	if lastEventID[0] == "" {
		return query, nil
	}
	c, err := protocol.ParseCursor(lastEventID[0])
	if err != nil {
		return nil, fmt.Errorf("Last-Event-ID: %w", err)
	}
	return &c, nil
}

// queryCursor reads after=V and epoch=E. Unknown parameters are ignored
// (cache busters).
func queryCursor(q url.Values) (*protocol.Cursor, error) {
	after, hasAfter, err := single(q, "after")
	if err != nil {
		return nil, err
	}
	epoch, hasEpoch, err := single(q, "epoch")
	if err != nil {
		return nil, err
	}
	if hasEpoch {
		if err := protocol.ValidateEpoch(epoch); err != nil {
			return nil, fmt.Errorf("epoch: %w", err)
		}
	}
	if !hasAfter {
		if epoch != "" {
			return nil, fmt.Errorf("%w: epoch %q given without after", protocol.ErrBadCursor, epoch)
		}
		return nil, nil
	}
	v, err := protocol.ParseVersion(after)
	if err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	return &protocol.Cursor{Epoch: epoch, Version: v}, nil
}

// single returns the one value of a query parameter, and whether it was
// given; more than one value is an error.
func single(q url.Values, name string) (string, bool, error) {
	vs, ok := q[name]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) != 1:
		return "", true, fmt.Errorf("%w: %s given %d times", protocol.ErrBadCursor, name, len(vs))
	}
	return vs[0], true, nil
}
