// Package callproxy relays viewsync calls to a backend over HTTP, for
// applications whose server functions are not written in Go. New returns a
// viewsync.CallFunc to register as the hub's fallback:
//
//	proxy, err := callproxy.New("http://127.0.0.1:9000/calls", nil)
//	hub.HandleCallFallback(proxy)
//
// A call {"arg":…} is POSTed as {"name":…,"arg":…}. A 2xx answer must be a
// JSON object {"result":…, "versions":{"COLLECTION":V}} (versions optional:
// the backend's own writes, reported with Call.Observe for
// read-your-writes). A backend that wrote to a source's system instead (a
// PostgreSQL table viewsync follows) adds "await":{"position":"16/B374D848"}
// (pg_current_wal_lsn() after its commit; "source" and "collections"
// optional): the call is answered once the source has applied that
// position, with its collections' versions then (Call.Await), or with 504
// timeout past the source's await timeout. A 4xx with the contract's error
// body and a client error code is relayed as is; anything else (5xx, 3xx,
// not JSON, over Options.MaxResponseBytes, no connection, an "await" that
// names no source or no position it can read) is 502 bad_gateway, no
// whole answer within Options.Timeout 504 timeout. Errors are
// *viewsync.CallError whose Error text adds the cause for the logs. The
// backend is trusted: see docs/architecture.md.
package callproxy
