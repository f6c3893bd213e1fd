// Package fanout delivers each collection's commits, in version order,
// without gaps and exactly once, to every live subscriber.
//
// The hub publishes each durable commit (Broker.Publish). Each becomes a
// Frame, encoded once per wire format (Frame.Encoding) and shared by every
// subscriber. A Subscription follows one collection from a cursor:
//
//	sub, err := broker.Subscribe("products", &cursor) // nil: start with a reset
//	defer sub.Close()
//	ev, err := sub.Next(ctx) // commits, or a catch-up or reset (store.Resume)
//
// Buffers, slow subscribers and lock order: docs/architecture.md.
package fanout
