// Package guard protects an HTTP/1 server's connections from clients that
// hold them without using them, and answers what the server refuses on its
// own in the contract's JSON error body. A Listener limits connections per
// client address and in all, idle ones included; Bodies bounds request
// bodies. Use them together:
//
//	gl, err := guard.NewListener(ln, &guard.ListenerOptions{MaxConns: 10000, MaxConnsPerAddr: 512, HealthConns: 8})
//	h, err := guard.Bodies(handler, &guard.BodyOptions{Timeout: 10 * time.Second})
//	srv := &http.Server{Handler: gl.Middleware(h), ConnState: gl.ConnState, ConnContext: gl.ConnContext,
//		IdleTimeout: time.Minute, ReadHeaderTimeout: 10 * time.Second}
//	srv.Serve(gl)
//
// Caveats (TLS, reverse proxies): docs/architecture.md.
package guard
