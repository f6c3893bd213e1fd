// Package viewsync keeps many clients' views of shared data in sync, live.
//
// A Hub serves named collections of records from a store.Store. Every
// commit bumps its collection's version and is kept in a change log, so a
// client at a cursor (EPOCH:VERSION) gets exactly what changed since: the
// commits, a compacted catch-up, or a reset (Collection.Changes, Wait,
// Subscribe).
//
//	st, err := boltstore.Open("viewsync.db", nil)
//	hub, err := viewsync.New(st)
//	products, err := hub.Collection("products")
//	rec, err := products.Put(ctx, "p1", []byte(`{"name":"Lamp"}`), viewsync.IfAbsent())
//
// Package server serves a hub's whole HTTP surface (package
// transport/httpapi, the API alone). How a commit reaches every client,
// and the guarantees on the way: docs/architecture.md.
package viewsync
