// Package guard protects an HTTP/1 server's connections from clients that
// hold them without using them, and answers what the server refuses on its
// own in the contract's JSON error body.
//
// A Listener counts the connections it accepts per client address and in
// all, idle keep-alive connections included, and refuses those past its
// limits with a short JSON error (429 or 503, Retry-After) written apart
// from the accepting goroutine. Reaching its total, it first closes the
// connection idle the longest. A few connections beyond either limit may
// still ask for a health path, so that health checks keep working. Its
// connections rewrite the HTTP server's own plain-text error answers (431,
// 400, 501, 505) as JSON.
//
// Bodies bounds request bodies: it refuses every request that carries a
// Transfer-Encoding, answers a declared Content-Length over the limit with
// 413 before anything reads the body, and reads bodies under a deadline.
//
// Use them together:
//
//	gl, err := guard.NewListener(ln, &guard.ListenerOptions{MaxConns: 10000, MaxConnsPerAddr: 512, HealthConns: 8})
//	h, err := guard.Bodies(handler, &guard.BodyOptions{Timeout: 10 * time.Second})
//	srv := &http.Server{Handler: gl.Middleware(h), ConnState: gl.ConnState, ConnContext: gl.ConnContext,
//		IdleTimeout: time.Minute, ReadHeaderTimeout: 10 * time.Second}
//	srv.Serve(gl)
//
// Caveats: the idle tracking needs the server's ConnState hook and the
// health-only connections its ConnContext hook. The rewriting of the
// server's own answers only sees plain-text HTTP/1: behind TLS
// (tls.NewListener over a Listener) the limits hold but those answers stay
// plain text. Limits per address see the proxy's address behind a reverse
// proxy: turn them off there and limit at the proxy. At most 64 refused
// connections are answered at once; past that they are closed unanswered.
package guard
