// Package fanout delivers each collection's commits, in version order, to
// every live subscriber.
//
// The flow: the hub applies a commit to the store and, once it is durable,
// publishes it here. The collection's topic encodes it once per wire format
// (a Frame) and appends it to a buffer of recent frames shared by all
// subscribers, bounded in bytes; publishing allocates the same with one
// subscriber or ten thousand, never blocks, and wakes the subscribers that
// wait. Commits published out of
// order (concurrent writers finish in any order) are held until their
// predecessors arrive, and read from the store if they are late.
//
// A Subscription is a cursor into that buffer. Next returns everything
// between the cursor and the head in one batch, so a transport can coalesce
// it into one write. Subscribing at an old cursor first reads the store by
// the rule every reader follows (store.Resume: pages of the change log,
// else a catch-up, else a reset), then joins the buffer seamlessly: no
// gap, no duplicate. A subscriber that falls further behind than the buffer holds
// loses its backlog and gets one compacted catch-up (the records changed
// since its cursor and the ids deleted), then continues live: views are
// state, so a slow client skips to the latest value of each record. When
// even that is impossible (another epoch, history gone) it gets a reset.
//
// Memory is bounded by the topics' buffers, not by the subscribers: a
// subscriber holds its cursor and the batch it is writing, which is at most
// a buffer's worth and is shared with the other subscribers. Stalled clients are the transports'
// business: they bound each write with a deadline.
//
// Lock order: Broker.mu before topic.mu.
package fanout
