// Package pgsource makes PostgreSQL tables live viewsync collections, fed
// from the database's own logical replication stream: no dual writes.
//
//	src, err := pgsource.Start(ctx, hub, &pgsource.Options{
//		URL:    "postgres://viewsync@db/shop",
//		Tables: []pgsource.Table{{Schema: "public", Name: "products", Collection: "products"}},
//	})
//	if err != nil {
//		log.Fatal(err) // bad credentials, no REPLICATION, wal_level, no primary key…
//	}
//	defer src.Close()
//
// The source creates (or reuses) a publication and a named, persistent
// replication slot with the built-in pgoutput plugin, loads each table
// from a snapshot consistent with the slot's stream, then streams: each
// PostgreSQL transaction touching a mapped table becomes one viewsync
// commit per collection, in commit order, through the hub (Hub.Feed;
// transactions received faster than they are made durable are applied in
// groups that share durable writes, Feed.CommitAll), so
// the store's change log, catch-up, resume, every transport, filtered
// views and caching work as for any collection. Clients' writes to a fed
// collection are refused.
//
// A record's id is its row's primary key (EncodeKey), its value the row as
// a JSON object of its columns (see docs/postgres.md for the type
// mapping). Each commit stores the transaction's end LSN with it
// (store.Positions); the slot's position is confirmed to PostgreSQL only
// once the commits before it are durable, and a transaction replayed after
// a crash is skipped by every collection that already holds it. TRUNCATE
// and a re-created table start a new epoch; a lost connection is retried
// with backoff. docs/postgres.md tells how to set PostgreSQL up, the
// failure modes and what to monitor.
package pgsource
