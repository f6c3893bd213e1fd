// Package callproxy relays viewsync calls to a backend over HTTP, for
// applications whose server functions are not written in Go.
//
// New returns a viewsync.CallFunc. Registered as the hub's fallback
// (Hub.HandleCallFallback), it serves every call without a Go handler:
//
//	POST /v1/calls/{name} {"arg":…}              caller → viewsync
//	POST backendURL       {"name":…,"arg":…}     viewsync → backend
//	200                   {"result":…,"versions":{"COLLECTION":V}}
//	                                             backend → viewsync
//	200 {"result":…,"versions":{…}}              viewsync → caller
//
// A 2xx answer must be a JSON object with "result" (null allowed).
// "versions", optional, names the collections the backend itself wrote
// through the HTTP API and the version each write produced (the "version"
// field of the write's answer); they are reported with Call.Observe, so the
// caller can wait until its view includes the backend's writes
// (read-your-writes). A 4xx answer with the contract's error body
// {"error":{"code":…,"message":…}} and a client error code is relayed with
// that code and message. Everything else — a 5xx, a 3xx, an answer that is
// not JSON or is over Options.MaxResponseBytes, a connection failure — is
// 502 bad_gateway; no whole answer within Options.Timeout is 504 timeout.
//
// The errors carry the message the caller sees in a *viewsync.CallError;
// their Error text adds the cause (the transport error, the start of the
// backend's body) for the logs.
//
// Caveats: the backend is trusted. The proxy does not check that the
// versions it reports exist; a version beyond a collection's head makes a
// client wait for a commit that may never come. A 401 or 403 from the
// backend is relayed to the caller like any other client error, even when
// it means the proxy's own credentials (Options.Header, or user:password in
// the URL, sent as Basic auth) were refused. The caller's own headers,
// cookies and identity are not forwarded: the backend learns only the
// call's name and arg, so it cannot tell callers apart. A timed-out call is
// abandoned, not undone: the backend may still finish it and its writes
// still happen. Messages of 5xx answers are not relayed, since they may
// hold internal details. A default Options.Client never follows redirects;
// one of your own that does sends Options.Header to the redirect's target.
package callproxy
