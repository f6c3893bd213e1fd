// Package auth decides who a request comes from and what they may do.
//
// A Principal carries the rights a request has: the collections it may
// read and write and the calls it may make, each as a list of simple
// patterns ("products", "orders.*", "*"). Where the principal comes from is
// a Func: the JWT verifier of this package (HMAC secret, or RSA, ECDSA and
// Ed25519 public keys from a JWKS file, the algorithm pinned by the
// configuration, never taken from the token), or an embedding
// application's own. A Policy combines it with per-principal rate limits;
// the transports (httpapi, sse, ws) enforce one Policy on every request and
// every WebSocket message.
//
// Tokens arrive as "Authorization: Bearer TOKEN" or, for EventSource and
// WebSocket clients that cannot set headers, as a "token" query parameter or
// a cookie. A token's rights are in its "viewsync" claim:
//
//	{"sub": "ana", "exp": 1767225600,
//	 "viewsync": {"read": ["products", "orders.*"], "write": ["products"], "call": ["discount"]}}
//
// A long-lived stream ends when its principal's token expires, with a
// clear reason, so that the client fetches a fresh token and resumes.
package auth
