// Package auth decides who a request comes from and what they may do.
//
// A Principal carries rights (collections to read and write, calls to
// make, as patterns like "orders.*"); a Func finds it — the JWT verifier of
// this package or an application's own. A Policy combines it with
// per-principal rates, and the transports (httpapi, sse, ndjson, ws)
// enforce one Policy on every request and WebSocket message:
//
//	v, err := auth.NewJWT(auth.JWTOptions{Secret: secret})
//	policy := &auth.Policy{Authenticate: v.Authenticate, Commits: limit.NewRate(limit.RateOptions{PerSecond: 200})}
//
// Tokens, rights, expiry and refusals: docs/security.md.
package auth
