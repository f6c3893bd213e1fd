package auth

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Action is what a request does to a collection or call.
type Action uint8

// The actions rights are granted for.
const (
	// Read: snapshots, records, versions, changes and subscriptions.
	Read Action = iota + 1
	// Write: puts, patches, deletes and commits.
	Write
	// Call: named server functions (the name is the call's, not a
	// collection's).
	Call
)

// String returns the action's name as it appears in the rights claim.
func (a Action) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case Call:
		return "call"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Rights lists, per action, the patterns of the names it is allowed on. A
// pattern is a name, or a name with '*' wildcards, each matching any run of
// characters (dots included): "orders.*" matches "orders.eu" and
// "orders.eu.north"; "*" matches every name.
//
// Reads and writes may also be granted on some records only, by row
// rights: the action is allowed on the collections their patterns match,
// restricted to the records their filters match (see Filter). In JSON (the
// rights claim), row rights are objects among the patterns of "read" and
// "write": {"read": ["products", {"collection": "orders", "where":
// {"owner": "alice"}}]}.
type Rights struct {
	Read  []string `json:"read,omitempty"`
	Write []string `json:"write,omitempty"`
	Call  []string `json:"call,omitempty"`
	// ReadRows and WriteRows are the row rights of Read and Write: in
	// JSON, the objects of "read" and "write".
	ReadRows  []RowRight `json:"-"`
	WriteRows []RowRight `json:"-"`

	// invalid is the first entry of "read" or "write" UnmarshalJSON could
	// not read, reported by Validate.
	invalid error
}

// All grants every right on every name.
var All = Rights{Read: []string{"*"}, Write: []string{"*"}, Call: []string{"*"}}

// Validate checks that every pattern is well formed: 1 to 128 characters
// of a-z, A-Z, 0-9, '_', '.', '-' and '*' (collection names are lower
// case; call names may have capitals). Matching is case-sensitive. Every
// row right must have a valid collection pattern and a Where filter, and
// every entry of the JSON the rights were read from must have been a
// pattern or a valid row right.
func (r Rights) Validate() error {
	if r.invalid != nil {
		return r.invalid
	}
	for _, set := range []struct {
		a Action
		p []string
	}{{Read, r.Read}, {Write, r.Write}, {Call, r.Call}} {
		for _, p := range set.p {
			if err := validatePattern(p); err != nil {
				return fmt.Errorf("%s right %q: %w", set.a, p, err)
			}
		}
	}
	for _, set := range []struct {
		a    Action
		rows []RowRight
	}{{Read, r.ReadRows}, {Write, r.WriteRows}} {
		for i, rr := range set.rows {
			if err := rr.validate(); err != nil {
				return fmt.Errorf("%s row right %d: %w", set.a, i, err)
			}
		}
	}
	return nil
}

func validatePattern(p string) error {
	if p == "" || len(p) > 128 {
		return fmt.Errorf("a pattern has 1 to 128 characters")
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == '*') {
			return fmt.Errorf("character %q is not allowed (a-z, A-Z, 0-9, _ . - and the wildcard *)", c)
		}
	}
	return nil
}

// Allows reports whether the rights allow action a on name: whether a
// pattern of a, or the collection pattern of a row right of a, matches
// name. A row right allows the action restricted to its records: see
// Filter.
func (r Rights) Allows(a Action, name string) bool {
	if r.allowsAll(a, name) {
		return true
	}
	return slices.ContainsFunc(r.rows(a), func(rr RowRight) bool { return Match(rr.Collection, name) })
}

// rows returns the row rights of a (calls have none).
func (r Rights) rows(a Action) []RowRight {
	switch a {
	case Read:
		return r.ReadRows
	case Write:
		return r.WriteRows
	}
	return nil
}

// allowsAll reports whether a pattern of a matches name.
func (r Rights) allowsAll(a Action, name string) bool {
	var ps []string
	switch a {
	case Read:
		ps = r.Read
	case Write:
		ps = r.Write
	case Call:
		ps = r.Call
	}
	return slices.ContainsFunc(ps, func(p string) bool { return Match(p, name) })
}

// Match reports whether name matches pattern, where each '*' in pattern
// matches any run of characters, the empty one included.
func Match(pattern, name string) bool {
	// The classic greedy glob with backtracking to the last star: linear
	// in practice and never worse than len(pattern)*len(name).
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Principal is who a request comes from and what it may do.
type Principal struct {
	// Subject names the principal (a token's "sub"); rate limits are kept
	// per subject. Empty for anonymous requests.
	Subject string
	// Rights are what the principal may do.
	Rights Rights
	// Expires is when the credentials stop being valid (a token's "exp");
	// streams opened with them end then. Zero: never.
	Expires time.Time
	// Anonymous is set on requests that carried no credentials where
	// anonymous access is allowed.
	Anonymous bool
}

// Anonymous is the principal of requests without credentials on a server
// that allows anonymous access: every right, no expiry.
func Anonymous() Principal { return Principal{Rights: All, Anonymous: true} }

// Allows reports whether p may do a on name.
func (p Principal) Allows(a Action, name string) bool { return p.Rights.Allows(a, name) }

// String describes the principal for logs.
func (p Principal) String() string {
	if p.Anonymous {
		return "anonymous"
	}
	return "subject " + strconv.Quote(p.Subject)
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying p. The transports put the
// request's principal there, so call handlers can read it.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal in ctx, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
