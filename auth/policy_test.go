package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/protocol"
)

// rate1 returns a Rate of one event per second with bursts of one, on a
// clock that stands still at t0 unless *now is moved.
func rate1(now *time.Time) *limit.Rate {
	return limit.NewRate(limit.RateOptions{PerSecond: 1, Burst: 1, Now: func() time.Time { return *now }})
}

func request(remote string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/c/products", nil)
	r.RemoteAddr = remote
	return r
}

func TestNilPolicy(t *testing.T) {
	var p *Policy
	pr, err := p.Principal(request("1.2.3.4:5"))
	if err != nil || !pr.Anonymous || !pr.Allows(Write, "anything") {
		t.Errorf("nil Policy: Principal = %+v, %v; want Anonymous()", pr, err)
	}
	for _, a := range []Action{Read, Write, Call} {
		if err := p.Authorize(pr, a, "x.y"); err != nil {
			t.Errorf("nil Policy: Authorize(%v) = %v", a, err)
		}
		for range 100 {
			if err := p.Spend(pr, "1.2.3.4", a); err != nil {
				t.Fatalf("nil Policy: Spend(%v) = %v", a, err)
			}
		}
		if pr, err := p.Admit(request("1.2.3.4:5"), a, "x"); err != nil || !pr.Anonymous {
			t.Errorf("nil Policy: Admit(%v) = %+v, %v", a, pr, err)
		}
	}
	// A nil policy still checks the principal it is given.
	if err := p.Authorize(Principal{Subject: "ana"}, Read, "x"); !errors.Is(err, viewsync.ErrForbidden) {
		t.Errorf("nil Policy: Authorize of a principal without rights = %v", err)
	}
	// A policy without Authenticate is anonymous too.
	pr, err = (&Policy{}).Principal(request("1.2.3.4:5"))
	if err != nil || !pr.Anonymous {
		t.Errorf("Policy{}: Principal = %+v, %v", pr, err)
	}
}

func TestPolicyPrincipal(t *testing.T) {
	boom := errors.New("session store down")
	unauth := fmt.Errorf("%w: bad cookie", viewsync.ErrUnauthorized)
	forbid := fmt.Errorf("%w: banned", viewsync.ErrForbidden)
	tests := []struct {
		name     string
		err      error
		wantIs   []error
		wantCode string
		same     bool // returned as is
	}{
		{"plain error", boom, []error{viewsync.ErrUnauthorized, boom}, "unauthorized", false},
		{"unauthorized", unauth, []error{viewsync.ErrUnauthorized}, "unauthorized", true},
		{"forbidden", forbid, []error{viewsync.ErrForbidden}, "forbidden", true},
		{"expired", ErrTokenExpired, []error{viewsync.ErrUnauthorized, ErrTokenExpired}, "unauthorized", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var denied []string
			p := &Policy{
				Authenticate: func(*http.Request) (Principal, error) { return Principal{Subject: "leak"}, tt.err },
				Denied:       func(code string) { denied = append(denied, code) },
			}
			pr, err := p.Principal(request("1.2.3.4:5"))
			if err == nil {
				t.Fatal("no error")
			}
			for _, target := range tt.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("error %v does not wrap %v", err, target)
				}
			}
			if tt.same && err != tt.err {
				t.Errorf("error %v rewrapped", err)
			}
			if pr.Subject != "" {
				t.Errorf("principal %+v returned with the error", pr)
			}
			if len(denied) != 1 || denied[0] != tt.wantCode {
				t.Errorf("Denied got %q, want [%s]", denied, tt.wantCode)
			}
		})
	}
	// Success: the principal as given, no Denied call.
	called := false
	p := &Policy{
		Authenticate: func(r *http.Request) (Principal, error) { return Principal{Subject: r.Header.Get("X-Sub")}, nil },
		Denied:       func(string) { called = true },
	}
	r := request("1.2.3.4:5")
	r.Header.Set("X-Sub", "ana")
	if pr, err := p.Principal(r); err != nil || pr.Subject != "ana" || called {
		t.Errorf("Principal = %+v, %v (Denied called: %v)", pr, err, called)
	}
}

func TestPolicyAuthorize(t *testing.T) {
	var denied []string
	p := &Policy{Denied: func(code string) { denied = append(denied, code) }}
	ana := Principal{Subject: "ana", Rights: Rights{Read: []string{"products"}, Call: []string{"discount"}}}
	tests := []struct {
		pr   Principal
		a    Action
		name string
		want []string // in the message; nil: allowed
	}{
		{ana, Read, "products", nil},
		{ana, Call, "discount", nil},
		{ana, Write, "products", []string{`subject "ana"`, "may not write collection", `"products"`}},
		{ana, Read, "orders", []string{`subject "ana"`, "may not read collection", `"orders"`}},
		{ana, Call, "refund", []string{`subject "ana"`, "may not call \"refund\""}},
		{Principal{Anonymous: true}, Read, "x", []string{"anonymous may not read collection", `"x"`}},
	}
	for _, tt := range tests {
		denied = nil
		err := p.Authorize(tt.pr, tt.a, tt.name)
		if tt.want == nil {
			if err != nil || len(denied) != 0 {
				t.Errorf("Authorize(%v, %v, %q) = %v, denied %q", tt.pr, tt.a, tt.name, err, denied)
			}
			continue
		}
		if !errors.Is(err, viewsync.ErrForbidden) || errors.Is(err, viewsync.ErrUnauthorized) {
			t.Errorf("Authorize(%v, %v, %q) = %v, want ErrForbidden", tt.pr, tt.a, tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Authorize(%v, %v, %q) = %q, want it to mention %q", tt.pr, tt.a, tt.name, err, w)
			}
		}
		if len(denied) != 1 || denied[0] != "forbidden" {
			t.Errorf("Denied got %q, want [forbidden]", denied)
		}
	}
}

func TestPolicySpend(t *testing.T) {
	now := t0
	ana := Principal{Subject: "ana", Rights: All}
	bob := Principal{Subject: "bob", Rights: All}
	anon := Anonymous()
	noSub := Principal{Rights: All}                     // authenticated, empty subject
	anonSub := Principal{Subject: "x", Anonymous: true} // anonymous wins over a subject

	t.Run("keyed by subject", func(t *testing.T) {
		p := &Policy{Commits: rate1(&now)}
		mustSpend(t, p, ana, "1.1.1.1", Write)
		mustLimit(t, p, ana, "1.1.1.1", Write, "commits per second")
		mustLimit(t, p, ana, "2.2.2.2", Write, "commits per second") // another address, same subject
		mustSpend(t, p, bob, "1.1.1.1", Write)                       // another subject, same address
		mustSpend(t, p, anon, "1.1.1.1", Write)                      // anonymous from the same address
	})
	t.Run("anonymous keyed by address", func(t *testing.T) {
		p := &Policy{Commits: rate1(&now)}
		mustSpend(t, p, anon, "1.1.1.1", Write)
		mustLimit(t, p, anon, "1.1.1.1", Write, "commits per second")
		mustLimit(t, p, anonSub, "1.1.1.1", Write, "commits per second")
		mustSpend(t, p, anon, "2.2.2.2", Write)
		mustSpend(t, p, ana, "1.1.1.1", Write)
	})
	t.Run("empty subject keyed by address", func(t *testing.T) {
		p := &Policy{Commits: rate1(&now)}
		mustSpend(t, p, noSub, "1.1.1.1", Write)
		mustLimit(t, p, noSub, "1.1.1.1", Write, "commits per second")
		mustLimit(t, p, anon, "1.1.1.1", Write, "commits per second") // the same budget
		mustSpend(t, p, noSub, "2.2.2.2", Write)
	})
	t.Run("subjects and addresses do not collide", func(t *testing.T) {
		p := &Policy{Commits: rate1(&now)}
		mustSpend(t, p, anon, "1.1.1.1", Write)
		mustSpend(t, p, Principal{Subject: "1.1.1.1"}, "9.9.9.9", Write)
		mustSpend(t, p, Principal{Subject: "ip:1.1.1.1"}, "9.9.9.9", Write)
	})
	t.Run("writes and calls have their own rates", func(t *testing.T) {
		p := &Policy{Commits: rate1(&now), Calls: rate1(&now)}
		mustSpend(t, p, ana, "1.1.1.1", Write)
		mustLimit(t, p, ana, "1.1.1.1", Write, "commits per second")
		mustSpend(t, p, ana, "1.1.1.1", Call)
		mustLimit(t, p, ana, "1.1.1.1", Call, "calls per second")
		// Time refills both.
		now = now.Add(time.Second)
		mustSpend(t, p, ana, "1.1.1.1", Write)
		mustSpend(t, p, ana, "1.1.1.1", Call)
	})
	t.Run("calls use Calls only", func(t *testing.T) {
		p := &Policy{Calls: rate1(&now)}
		for range 50 {
			mustSpend(t, p, ana, "1.1.1.1", Write) // no Commits: unbounded
		}
		mustSpend(t, p, ana, "1.1.1.1", Call)
		mustLimit(t, p, ana, "1.1.1.1", Call, "calls per second")
	})
	t.Run("reads are never limited", func(t *testing.T) {
		p := &Policy{Commits: rate1(&now), Calls: rate1(&now)}
		for range 100 {
			mustSpend(t, p, ana, "1.1.1.1", Read)
			mustSpend(t, p, anon, "1.1.1.1", Read)
			mustSpend(t, p, ana, "1.1.1.1", Action(0))
		}
		mustSpend(t, p, ana, "1.1.1.1", Write) // nor do they spend the others
		mustSpend(t, p, ana, "1.1.1.1", Call)
	})
	t.Run("retry after", func(t *testing.T) {
		p := &Policy{Commits: limit.NewRate(limit.RateOptions{PerSecond: 4, Burst: 2, Now: func() time.Time { return now }})}
		mustSpend(t, p, ana, "", Write)
		mustSpend(t, p, ana, "", Write)
		err := p.Spend(ana, "", Write)
		var rl *viewsync.RateLimitError
		if !errors.As(err, &rl) || rl.RetryAfter != 250*time.Millisecond {
			t.Fatalf("Spend = %v, want a RateLimitError retrying after 250ms", err)
		}
		if viewsync.RetryAfter(err) != time.Second {
			t.Errorf("RetryAfter = %v, want 1s (rounded up)", viewsync.RetryAfter(err))
		}
	})
}

func mustSpend(t *testing.T, p *Policy, pr Principal, addr string, a Action) {
	t.Helper()
	if err := p.Spend(pr, addr, a); err != nil {
		t.Fatalf("Spend(%v, %q, %v) = %v", pr, addr, a, err)
	}
}

func mustLimit(t *testing.T, p *Policy, pr Principal, addr string, a Action, what string) {
	t.Helper()
	var denied []string
	p.Denied = func(code string) { denied = append(denied, code) }
	defer func() { p.Denied = nil }()
	err := p.Spend(pr, addr, a)
	var rl *viewsync.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, viewsync.ErrRateLimited) {
		t.Fatalf("Spend(%v, %q, %v) = %v, want a RateLimitError", pr, addr, a, err)
	}
	if rl.Limit != what || rl.RetryAfter <= 0 || rl.RetryAfter > time.Second {
		t.Errorf("RateLimitError %+v, want limit %q and 0 < RetryAfter <= 1s", rl, what)
	}
	if len(denied) != 1 || denied[0] != "rate_limited" {
		t.Errorf("Denied got %q, want [rate_limited]", denied)
	}
}

func TestPolicyAdmit(t *testing.T) {
	now := t0
	var denied []string
	p := &Policy{
		Authenticate: func(r *http.Request) (Principal, error) {
			switch r.Header.Get("X-Sub") {
			case "":
				return Principal{}, errors.New("no session")
			case "anon":
				return Anonymous(), nil
			case "reader":
				return Principal{Subject: "reader", Rights: Rights{Read: []string{"*"}}}, nil
			}
			return Principal{Subject: r.Header.Get("X-Sub"), Rights: All}, nil
		},
		Commits: rate1(&now),
		Calls:   rate1(&now),
		Denied:  func(code string) { denied = append(denied, code) },
	}
	req := func(sub, remote string) *http.Request {
		r := request(remote)
		if sub != "" {
			r.Header.Set("X-Sub", sub)
		}
		return r
	}
	type step struct {
		sub, remote string
		a           Action
		want        error // nil: admitted
	}
	steps := []step{
		{"writer", "1.1.1.1:1", Write, nil},
		{"writer", "1.1.1.1:2", Write, viewsync.ErrRateLimited},
		{"reader", "1.1.1.1:1", Write, viewsync.ErrForbidden}, // 403 before 429: its budget is untouched
		{"reader", "1.1.1.1:1", Read, nil},
		{"", "1.1.1.1:1", Write, viewsync.ErrUnauthorized}, // 401 before 403 and 429
		{"anon", "5.5.5.5:1", Write, nil},
		{"anon", "5.5.5.5:2", Write, viewsync.ErrRateLimited}, // by address, the port ignored
		{"anon", "6.6.6.6:1", Write, nil},
		{"anon", "[::1]:1", Call, nil},
		{"anon", "[::1]:2", Call, viewsync.ErrRateLimited},
		{"anon", "[::1]:2", Read, nil},
	}
	for i, s := range steps {
		denied = nil
		pr, err := p.Admit(req(s.sub, s.remote), s.a, "products")
		if s.want == nil {
			if err != nil {
				t.Errorf("step %d %+v: Admit = %v", i, s, err)
			}
			if len(denied) != 0 {
				t.Errorf("step %d: Denied got %q", i, denied)
			}
			if s.sub != "" && s.sub != "anon" && pr.Subject != s.sub {
				t.Errorf("step %d: principal %+v", i, pr)
			}
			continue
		}
		if !errors.Is(err, s.want) {
			t.Errorf("step %d %+v: Admit = %v, want %v", i, s, err, s.want)
		}
		if want := string(viewsync.ErrorCode(s.want)); len(denied) != 1 || denied[0] != want {
			t.Errorf("step %d: Denied got %q, want [%s]", i, denied, want)
		}
		if !pr.Expires.IsZero() || pr.Subject != "" || pr.Anonymous {
			t.Errorf("step %d: principal %+v returned with the error", i, pr)
		}
	}
	// The forbidden writer did not spend: reader's Write budget is whole
	// once its rights allow writes. Check through Spend directly.
	if err := p.Spend(Principal{Subject: "reader"}, "", Write); err != nil {
		t.Errorf("a refused (403) request spent the budget: %v", err)
	}
}

func TestUntilExpiry(t *testing.T) {
	t.Run("expired already", func(t *testing.T) {
		pr := Principal{Subject: "ana", Expires: time.Now().Add(-time.Second)}
		ctx, cancel := UntilExpiry(context.Background(), pr)
		defer cancel()
		<-ctx.Done()
		if !Expired(ctx) {
			t.Errorf("Expired = false, cause %v", context.Cause(ctx))
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || context.Cause(ctx) != ErrTokenExpired {
			t.Errorf("Err %v, Cause %v", ctx.Err(), context.Cause(ctx))
		}
		if !errors.Is(context.Cause(ctx), viewsync.ErrUnauthorized) {
			t.Error("the cause does not match ErrUnauthorized")
		}
		if got, ok := FromContext(ctx); !ok || got.Subject != "ana" {
			t.Errorf("FromContext = %+v, %v", got, ok)
		}
	})
	t.Run("expires soon", func(t *testing.T) {
		exp := time.Now().Add(20 * time.Millisecond)
		ctx, cancel := UntilExpiry(context.Background(), Principal{Subject: "ana", Expires: exp})
		defer cancel()
		if d, ok := ctx.Deadline(); !ok || !d.Equal(exp) {
			t.Errorf("Deadline = %v, %v; want %v", d, ok, exp)
		}
		<-ctx.Done()
		if end := time.Now(); end.Before(exp) {
			t.Errorf("ended at %v, before %v", end, exp)
		}
		if !Expired(ctx) {
			t.Errorf("Expired = false, cause %v", context.Cause(ctx))
		}
	})
	t.Run("never expires", func(t *testing.T) {
		ctx, cancel := UntilExpiry(context.Background(), Principal{Subject: "ana"})
		if _, ok := ctx.Deadline(); ok {
			t.Error("a deadline without Expires")
		}
		if got, ok := FromContext(ctx); !ok || got.Subject != "ana" {
			t.Errorf("FromContext = %+v, %v", got, ok)
		}
		select {
		case <-ctx.Done():
			t.Fatal("done before cancel")
		default:
		}
		cancel()
		<-ctx.Done()
		if Expired(ctx) {
			t.Error("Expired after cancel")
		}
	})
	t.Run("parent ends first", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		ctx, cancel := UntilExpiry(parent, Principal{Expires: time.Now().Add(time.Hour)})
		defer cancel()
		cancelParent()
		<-ctx.Done()
		if Expired(ctx) {
			t.Error("Expired when the parent was canceled")
		}
	})
	t.Run("cancel before expiry", func(t *testing.T) {
		ctx, cancel := UntilExpiry(context.Background(), Principal{Expires: time.Now().Add(time.Hour)})
		cancel()
		if Expired(ctx) || !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Expired %v, Err %v", Expired(ctx), ctx.Err())
		}
	})
	if Expired(context.Background()) {
		t.Error("Expired(Background)")
	}
	dl, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if Expired(dl) {
		t.Error("Expired for a plain deadline")
	}
}

func TestWriteDenied(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		status    int
		code      protocol.Code
		msg       string // "" for err.Error()
		retry     string // Retry-After, "" for none
		challenge bool
	}{
		{"unauthorized", fmt.Errorf("%w: token expired", viewsync.ErrUnauthorized), 401, protocol.CodeUnauthorized, "", "", true},
		{"token expired", ErrTokenExpired, 401, protocol.CodeUnauthorized, "", "", true},
		{"forbidden", fmt.Errorf("%w: no", viewsync.ErrForbidden), 403, protocol.CodeForbidden, "", "", false},
		{"rate limited 1.5s", &viewsync.RateLimitError{Limit: "commits per second", RetryAfter: 1500 * time.Millisecond}, 429, protocol.CodeRateLimited, "", "2", false},
		{"rate limited 100ms", &viewsync.RateLimitError{Limit: "calls per second", RetryAfter: 100 * time.Millisecond}, 429, protocol.CodeRateLimited, "", "1", false},
		{"rate limited 0", &viewsync.RateLimitError{Limit: "x"}, 429, protocol.CodeRateLimited, "", "1", false},
		{"rate limited 3s", &viewsync.RateLimitError{Limit: "x", RetryAfter: 3 * time.Second}, 429, protocol.CodeRateLimited, "", "3", false},
		{"rate limited 3s+1ns", &viewsync.RateLimitError{Limit: "x", RetryAfter: 3*time.Second + 1}, 429, protocol.CodeRateLimited, "", "4", false},
		{"wrapped rate limit", fmt.Errorf("ws: %w", &viewsync.RateLimitError{Limit: "x", RetryAfter: 2 * time.Second}), 429, protocol.CodeRateLimited, "", "2", false},
		{"plain rate limited", viewsync.ErrRateLimited, 429, protocol.CodeRateLimited, "", "1", false},
		{"other error", errors.New("db password is hunter2"), 500, protocol.CodeInternal, "internal error", "", false},
		{"not found", viewsync.ErrNotFound, 500, protocol.CodeInternal, "internal error", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteDenied(w, tt.err)
			res := w.Result()
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
			if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
				t.Errorf("Content-Length %q for a body of %d bytes", cl, w.Body.Len())
			}
			var body struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			msg := tt.msg
			if msg == "" {
				msg = tt.err.Error()
			}
			if body.Error.Code != string(tt.code) || body.Error.Message != msg {
				t.Errorf("body error %+v, want code %q message %q", *body.Error, tt.code, msg)
			}
			if got := res.Header.Get("Retry-After"); got != tt.retry {
				t.Errorf("Retry-After %q, want %q", got, tt.retry)
			}
			wa := res.Header.Get("WWW-Authenticate")
			if tt.challenge != (wa != "") || (tt.challenge && !strings.HasPrefix(wa, "Bearer ")) {
				t.Errorf("WWW-Authenticate %q (want a Bearer challenge: %v)", wa, tt.challenge)
			}
		})
	}
}
