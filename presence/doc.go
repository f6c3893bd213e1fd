// Package presence keeps who is present in each collection: the small,
// ephemeral state each connection publishes there ({"editing":"p7",
// "name":"Ana"}, optionally about one record), and the members every
// subscriber of the collection sees join, change and leave. Presence is
// not history: it lives in memory (and, across nodes, on a Bus), never in
// a store.
//
// A Registry belongs to a hub. A connection opens a Session (Open) and
// publishes in collections with Session.Set, refreshes them with
// Session.Touch (heartbeats, never fanned out) and leaves with
// Session.Clear or Session.Close; an entry not refreshed for the TTL
// leaves on its own. One principal present through several sessions is
// one member: it joins with the first and leaves with the last, showing
// the state set last. A subscriber follows a collection's presence with
// Registry.Follow: a sync (the members, or only their count above
// MaxMembers), then joins, updates and leaves, written by a goroutine of
// the follower's own while there is something to write.
//
// Transports only encode (AppendMessage); the rules — limits, the
// principal's rows, leaving on time, how often a session may set its
// state (SetRate) — are here and in the hub
// (viewsync.Collection.SetPresence, FollowPresence).
//
// Across nodes, a Bus (package natsbus: core NATS) carries each
// registry's members to the others: changes as they happen, batched per
// collection, and all of them every third of the TTL; heartbeats stay on
// their node. A member is present while any node has it, one member for
// one principal on several nodes, showing the state set last; the
// members of a node that dies leave the others within its TTL and a
// tenth of it (see Bus); a registry that starts or reconnects asks the
// others for theirs at once.
//
// Caveats: member ids of authenticated principals are derived from their
// subject (a hash), so one can test whether a guessed subject is present
// where one may read; states are what clients say (a "name" is not
// checked). A follower's visibility of a record is decided when a member
// moves onto it, not again when the record later changes. Which of one
// principal's states on several nodes shows is decided by the nodes'
// clocks.
package presence
