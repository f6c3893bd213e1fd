package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/limit"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/server"
	"github.com/viewsync/viewsync/transport/cors"
)

// accessConfig holds the flags of 'viewsync serve' on authentication,
// browser safety and per-client limits.
type accessConfig struct {
	secret            string
	secretFile        string
	secretAlg         string
	jwks              string
	audience          string
	issuer            string
	leeway            time.Duration
	cookie            string
	insecureAnonymous bool
	corsOrigins       string
	maxConnsPerIP     int
	commitRate        float64
	commitBurst       int
	callRate          float64
	callBurst         int
}

// Defaults of the access flags.
const (
	defaultMaxConnsPerIP = 512
	defaultCommitRate    = 200
	defaultCallRate      = 50
)

func (c *accessConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.secret, "auth-secret", "", "HMAC secret (at least 32 bytes) that signs the JWT bearer tokens clients present; prefer VIEWSYNC_AUTH_SECRET or --auth-secret-file over the command line")
	fs.StringVar(&c.secretFile, "auth-secret-file", "", "file holding the HMAC secret (trailing newline ignored)")
	fs.StringVar(&c.secretAlg, "auth-secret-alg", "HS256", "the one algorithm tokens signed with the secret may use: HS256, HS384 or HS512")
	fs.StringVar(&c.jwks, "auth-jwks", "", "JWKS file of RSA, ECDSA or Ed25519 public keys that sign the tokens (each key pins its algorithm)")
	fs.StringVar(&c.audience, "auth-audience", "", "when set, tokens must name it in \"aud\"")
	fs.StringVar(&c.issuer, "auth-issuer", "", "when set, tokens must have it as \"iss\"")
	fs.DurationVar(&c.leeway, "auth-leeway", 5*time.Second, "clock skew allowed when checking a token's exp and nbf")
	fs.StringVar(&c.cookie, "auth-cookie", auth.DefaultCookie, "cookie a token may arrive in (besides Authorization: Bearer and the token query parameter); \"-\" for none")
	fs.BoolVar(&c.insecureAnonymous, "insecure-anonymous", false, "allow anonymous access with every right on a non-loopback address (without a key, only loopback addresses are served)")
	fs.StringVar(&c.corsOrigins, "cors-origin", "", "comma-separated origins whose pages may call the API and open WebSockets (https://app.example.com, https://*.example.com, or *)")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", defaultMaxConnsPerIP, "most TCP connections open at once from one client address, idle keep-alive ones included (so also requests, streams and WebSockets); past it new ones get 429; 0: no limit")
	fs.Float64Var(&c.commitRate, "commit-rate", defaultCommitRate, "commits (writes) per second each principal may make on average (anonymous: each client address; 429 past it); 0: no limit")
	fs.IntVar(&c.commitBurst, "commit-burst", 0, "commits a principal may make at once above --commit-rate; 0: twice the rate")
	fs.Float64Var(&c.callRate, "call-rate", defaultCallRate, "calls per second each principal may make on average; 0: no limit")
	fs.IntVar(&c.callBurst, "call-burst", 0, "calls a principal may make at once above --call-rate; 0: twice the rate")
}

func (c *accessConfig) validate() error {
	switch {
	case c.secret != "" && c.secretFile != "":
		return errors.New("give --auth-secret or --auth-secret-file, not both")
	case c.leeway < 0:
		return errors.New("--auth-leeway must not be negative")
	case c.maxConnsPerIP < 0:
		return errors.New("--max-conns-per-ip must not be negative")
	case c.commitRate < 0 || c.callRate < 0:
		return errors.New("--commit-rate and --call-rate must not be negative")
	case c.commitBurst < 0 || c.callBurst < 0:
		return errors.New("--commit-burst and --call-burst must not be negative")
	}
	return nil
}

// access is what the access flags build.
type access struct {
	policy *auth.Policy
	// maxConnsPerIP is the per-address connection limit, counted by the
	// listener (0: none).
	maxConnsPerIP int
	// origins are the --cors-origin origins, whose pages may use the API
	// and open WebSockets.
	origins []string
}

// build makes the policy and middleware, refusing to serve anonymous
// access beyond loopback unless --insecure-anonymous.
//
// On loopback without a key (development), the per-client limits are off
// unless given explicitly: every local client shares one address.
func (c *accessConfig) build(addr string, explicit func(flag string) bool, met *metrics.Prometheus, log *slog.Logger) (*access, error) {
	secret, err := loadSecret(c.secret, c.secretFile)
	if err != nil {
		return nil, err
	}
	a := &access{policy: &auth.Policy{Denied: met.Denied}}
	if len(secret) > 0 || c.jwks != "" {
		o := auth.JWTOptions{Secret: secret, SecretAlgorithm: c.secretAlg, Audience: c.audience, Issuer: c.issuer, Leeway: c.leeway, Cookie: c.cookie}
		if c.jwks != "" {
			ks, err := auth.LoadJWKS(c.jwks)
			if err != nil {
				return nil, fmt.Errorf("--auth-jwks: %w", err)
			}
			o.Keys = ks
		}
		v, err := auth.NewJWT(o)
		if err != nil {
			return nil, err
		}
		a.policy.Authenticate = v.Authenticate
		log.Info("auth: JWT bearer tokens required", "hmac", len(secret) > 0, "jwks", c.jwks, "audience", c.audience, "issuer", c.issuer)
	} else {
		loop, err := server.Loopback(addr)
		if err != nil {
			return nil, fmt.Errorf("%w: --addr: %w", cliflag.ErrBadFlag, err)
		}
		switch {
		case loop:
			log.Info("auth: no key configured; anonymous access with every right, served on loopback only", "addr", addr)
			for _, f := range []struct {
				name string
				v    *float64
			}{{"commit-rate", &c.commitRate}, {"call-rate", &c.callRate}} {
				if !explicit(f.name) {
					*f.v = 0
				}
			}
			if !explicit("max-conns-per-ip") {
				c.maxConnsPerIP = 0
			}
		case c.insecureAnonymous:
			log.Warn("auth: no key configured and --insecure-anonymous: ANYONE who reaches this address can read and write everything", "addr", addr)
		default:
			return nil, fmt.Errorf("%w: no auth key is configured and --addr %s is not a loopback address: set --auth-secret (or --auth-jwks), bind to 127.0.0.1, or accept anonymous access with --insecure-anonymous", cliflag.ErrBadFlag, addr)
		}
	}
	if c.commitRate > 0 {
		a.policy.Commits = limit.NewRate(limit.RateOptions{PerSecond: c.commitRate, Burst: burst(c.commitBurst, c.commitRate)})
	}
	if c.callRate > 0 {
		a.policy.Calls = limit.NewRate(limit.RateOptions{PerSecond: c.callRate, Burst: burst(c.callBurst, c.callRate)})
	}
	// The per-address limit counts TCP connections at the listener (see
	// serveConfig.listen), idle keep-alive ones included; limit.Conns,
	// which counts requests, would count less and refuse health checks.
	a.maxConnsPerIP = c.maxConnsPerIP
	if origins := splitList(c.corsOrigins); len(origins) > 0 {
		// Checked here, to name the flag.
		if _, err := cors.ParseOrigins(origins); err != nil {
			return nil, fmt.Errorf("%w: --cors-origin: %w", cliflag.ErrBadFlag, err)
		}
		a.origins = origins
		log.Info("CORS: pages of these origins may use the API", "origins", origins)
	}
	return a, nil
}

// loadSecret returns the HMAC secret given on the command line, or read
// from file (its trailing line break dropped) when file is set.
func loadSecret(secret, file string) ([]byte, error) {
	if file == "" {
		return []byte(secret), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--auth-secret-file: %w", err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}

// burst is the configured burst, or twice the rate.
func burst(b int, rate float64) int {
	if b > 0 {
		return b
	}
	return max(1, int(2*rate+0.999))
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
