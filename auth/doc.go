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
// Rights may also be row rights (RowRight): an action on the records of a
// collection that match a filter (package filter), as in the claim
// {"read": [{"collection": "orders", "where": {"owner": "alice"}}]}. A
// read right with a filter restricts every read of the principal to that
// filter ANDed with the client's own; a write right admits an op only if
// the record before it (when it exists) and after it (puts and patches)
// match, else the commit is forbidden and changes nothing.
// Principal.Filter returns the filter in force on a collection.
//
// Tokens, rights, row rights, expiry and refusals: docs/security.md.
package auth
