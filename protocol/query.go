package protocol

import (
	"errors"
	"fmt"
	"net/url"
)

// ErrBadQuery is returned (wrapped) for a query string that does not parse
// or that repeats a parameter given at most once.
var ErrBadQuery = errors.New("bad query")

// ParseQuery parses a request's raw query string strictly, for every
// endpoint that reads one: every pair must decode (a malformed
// %-escape or a ';' separator is an error, where url.URL.Query drops the
// pair silently), and each parameter named in single may be given at most
// once. Other parameters are kept as given (clients add cache busters).
// Errors wrap ErrBadQuery and name the problem.
func ParseQuery(raw string, single ...string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadQuery, err)
	}
	for _, name := range single {
		if vs := q[name]; len(vs) > 1 {
			return nil, fmt.Errorf("%w: %s given %d times", ErrBadQuery, name, len(vs))
		}
	}
	return q, nil
}
