// Package memstore is an in-memory store.Store, for tests and for
// ephemeral deployments that do not need their data to outlive the
// process: nothing is durable, and each Store starts a new epoch.
//
//	hub, err := viewsync.New(memstore.New(nil))
//
// Values are copied on the way in and out. See docs/architecture.md.
package memstore
