// Package httpapi serves the request/response half of viewsync's HTTP API
// v1: snapshots, the version poll, changes with long-poll, catch-up and
// reset, record reads and writes with preconditions, atomic commits, calls
// of named server functions, and the health endpoints. See DESIGN.md for the
// contract.
//
// Caveats: pages of changes are cut at multiples of Options.PageSize so that
// clients at different cursors request the same URLs after their first page;
// a page that is full, ends before the head and names its epoch is marked
// immutable and may be cached by browsers and CDNs for a year. Changing
// PageSize on a running deployment only changes which URLs are shared.
//
// A call that overruns Options.CallTimeout is answered 504 at the deadline,
// but its handler is not stopped: it only sees its context end. A handler
// that ignores its context runs on, and its writes still happen, after the
// caller was told it timed out.
package httpapi
