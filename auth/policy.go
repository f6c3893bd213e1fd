package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/viewsync/viewsync/internal/errcode"
	"github.com/viewsync/viewsync/limit"
)

// Func finds the principal of a request. It returns an error wrapping
// viewsync.ErrUnauthorized when the request's credentials are missing or
// invalid. An embedding application may supply its own (sessions, mTLS,
// another token format).
type Func func(r *http.Request) (Principal, error)

// ErrTokenExpired ends a stream whose principal's credentials expired. It
// matches viewsync.ErrUnauthorized.
var ErrTokenExpired = fmt.Errorf("%w: token expired", errcode.ErrUnauthorized)

// Policy is what the transports enforce on every request and WebSocket
// message: who the caller is, whether they may do what they ask, and
// whether they are within their rate. A nil *Policy lets everyone do
// everything, anonymously.
type Policy struct {
	// Authenticate finds the principal of a request. Nil: every request
	// is Anonymous().
	Authenticate Func
	// Commits bounds writes per principal (anonymous callers: per client
	// address). Nil: unbounded.
	Commits *limit.Rate
	// Calls bounds calls per principal, like Commits.
	Calls *limit.Rate
	// Denied, when set, is told of every refusal with its wire code
	// ("unauthorized", "forbidden" or "rate_limited"), for metrics.
	Denied func(code string)
}

// Principal returns the principal of r.
func (p *Policy) Principal(r *http.Request) (Principal, error) {
	if p == nil || p.Authenticate == nil {
		return Anonymous(), nil
	}
	pr, err := p.Authenticate(r)
	if err != nil {
		if !errors.Is(err, errcode.ErrUnauthorized) && !errors.Is(err, errcode.ErrForbidden) {
			err = fmt.Errorf("%w: %w", errcode.ErrUnauthorized, err)
		}
		p.denied(err)
		return Principal{}, err
	}
	return pr, nil
}

// Authorize returns nil when pr may do a on name, else an error wrapping
// viewsync.ErrForbidden.
func (p *Policy) Authorize(pr Principal, a Action, name string) error {
	if pr.Allows(a, name) {
		return nil
	}
	what := " collection"
	if a == Call {
		what = ""
	}
	err := fmt.Errorf("%w: %s may not %s%s %q", errcode.ErrForbidden, pr, a, what, name)
	p.denied(err)
	return err
}

// Spend takes one event of pr's budget for a (Write or Call; Read is not
// rate limited). addr is the client's address, the key of anonymous
// callers. Over budget it returns a *viewsync.RateLimitError.
func (p *Policy) Spend(pr Principal, addr string, a Action) error {
	if p == nil {
		return nil
	}
	var r *limit.Rate
	var what string
	switch a {
	case Write:
		r, what = p.Commits, "commits per second"
	case Call:
		r, what = p.Calls, "calls per second"
	default:
		return nil
	}
	key := "ip:" + addr
	if !pr.Anonymous && pr.Subject != "" {
		key = "sub:" + pr.Subject
	}
	if ok, after := r.Allow(key); !ok {
		err := &errcode.RateLimitError{Limit: what, RetryAfter: after}
		p.denied(err)
		return err
	}
	return nil
}

// Admit authenticates r, authorizes a on name and spends from the
// principal's budget, returning the principal.
func (p *Policy) Admit(r *http.Request, a Action, name string) (Principal, error) {
	pr, err := p.Principal(r)
	if err != nil {
		return Principal{}, err
	}
	if err := p.Allow(pr, limit.ClientAddr(r), a, name); err != nil {
		return Principal{}, err
	}
	return pr, nil
}

// Allow authorizes a on name for an authenticated principal and spends
// from its budget (addr is the client's address, the key of anonymous
// callers): what Admit does once the principal is known, as for each
// message of a WebSocket.
func (p *Policy) Allow(pr Principal, addr string, a Action, name string) error {
	if err := p.Authorize(pr, a, name); err != nil {
		return err
	}
	return p.Spend(pr, addr, a)
}

func (p *Policy) denied(err error) {
	if p == nil || p.Denied == nil {
		return
	}
	p.Denied(string(errcode.Of(err)))
}

// UntilExpiry returns a copy of ctx carrying pr that ends, with cause
// ErrTokenExpired, when pr's credentials expire (never when they don't).
func UntilExpiry(ctx context.Context, pr Principal) (context.Context, context.CancelFunc) {
	ctx = NewContext(ctx, pr)
	if pr.Expires.IsZero() {
		return context.WithCancel(ctx)
	}
	return context.WithDeadlineCause(ctx, pr.Expires, ErrTokenExpired)
}

// Expired reports whether ctx ended because its principal's credentials
// expired (see UntilExpiry).
func Expired(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrTokenExpired)
}
