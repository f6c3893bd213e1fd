package auth

import "github.com/viewsync/viewsync/filter"

// Where returns the filter p's rights put on action a over name (see
// Rights.Filter): the rows p may read or write, nil when p's rights are
// not restricted there. Transports AND it with a client's own filter and
// pass it to viewsync.Collection.Where.
func (p Principal) Where(a Action, name string) *filter.Filter {
	f, _ := p.Filter(a, name)
	return f
}
