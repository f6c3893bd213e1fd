package push

import (
	"fmt"
	"net/url"

	"github.com/viewsync/viewsync/protocol"
)

// ParseCursor returns the cursor a stream resumes from: the Last-Event-ID
// header (its values as sent) when present and not empty, else the after
// and epoch parameters of rawQuery, the request's query string. Both are
// checked, so a malformed one is refused even when the other wins. A nil
// cursor without error means none was given: the stream starts with a
// reset. Errors wrap protocol.ErrBadCursor, or protocol.ErrBadQuery for a
// query string that does not parse or gives after or epoch more than once.
func ParseCursor(lastEventID []string, rawQuery string) (*protocol.Cursor, error) {
	q, err := protocol.ParseQuery(rawQuery, "after", "epoch")
	if err != nil {
		return nil, err
	}
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

// queryCursor reads after=V and epoch=E of a query in which each is given
// at most once (see protocol.ParseQuery). Unknown parameters are ignored
// (cache busters).
func queryCursor(q url.Values) (*protocol.Cursor, error) {
	after, hasAfter := param(q, "after")
	epoch, hasEpoch := param(q, "epoch")
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

// param returns the first value of a query parameter, and whether it was
// given.
func param(q url.Values, name string) (string, bool) {
	vs, ok := q[name]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}
