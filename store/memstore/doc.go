// Package memstore is an in-memory store.Store, for tests and for
// ephemeral deployments that do not need their data to outlive the process.
//
// It keeps, per collection, the current records, the change log (at least
// Config.RetainCommits commits), an index of the live records by the
// version that wrote them and the deletion tombstones in version order, so
// a catch-up costs what changed since its cursor, not the size of the
// collection. Tombstones older than Config.RetainTombstones, by the clock
// Config.Now, are trimmed when the collection is next written; a catch-up
// from before a trimmed tombstone gets store.ErrHistoryGone.
//
// Each store gets a random epoch when it is made, shared by every collection
// until that collection is dropped; Drop gives the collection a fresh random
// epoch.
//
// Values are copied on the way in and on the way out: callers may modify
// what they pass and what they get back.
//
// Caveats: nothing is durable. A commit is acknowledged once it is in
// memory, and everything is lost with the process or on Close; reopening
// means making a new Store, which starts a new epoch. Collections, once
// written or dropped, stay in memory until Close, even when empty.
package memstore
