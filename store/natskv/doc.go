// Package natskv is viewsync's cluster store: a store.Store and
// store.Watcher on NATS JetStream, shared by every process connected to the
// same server or cluster with the same Options.Prefix.
//
//	st, err := natskv.Open(ctx, natskv.Options{URL: "nats://127.0.0.1:4222", Replicas: 3})
//	hub, err := viewsync.New(st) // also delivers the other processes' commits
//
// It needs nats-server 2.12 or later with JetStream; a commit is one atomic
// batch of about one message per record written plus two, so
// Options.MaxBatch, and the server's batch limit, bound a commit's size.
// A connection given as Options.Conn should be made with ConnOptions. A
// collection is open (followed, its state in memory) while
// it is used or held (Store.Hold), and released Options.IdleAfter after. A
// commit is made once even when its acknowledgement is lost; a crash of
// the server leading a collection's stream pauses its commits for
// JetStream's election. Each collection is a stream of its own, or, with
// Options.Layout LayoutShared, a subject space of one stream shared by
// every collection of the prefix (many more collections per cluster),
// which each process follows with one consumer for all its collections.
// The mapping onto streams, commits, the follower,
// retention, epochs, failover and fairness: docs/architecture.md; server
// settings and what to expect: docs/deploy.md.
package natskv
