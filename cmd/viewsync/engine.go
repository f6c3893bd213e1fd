package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/presence/natsbus"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/store/natskv"
)

// engineConfig holds the flags of 'viewsync serve' that choose and
// configure the store.
type engineConfig struct {
	engine      string
	natsURL     string
	natsCreds   string
	natsTLSCA   string
	natsTLSCert string
	natsTLSKey  string
	replicas    int
	prefix      string
	natsTimeout time.Duration
	natsBeat    time.Duration
	natsIdle    time.Duration
	natsLayout  string
	maxBatch    int
	maxBacklog  int
	logCache    cliflag.Size
	recordCache cliflag.Size
	recordIndex int
}

func (c *engineConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&c.engine, "engine", "bbolt", "store engine: bbolt (embedded, one file in --data) or nats (NATS JetStream, shared by several viewsync nodes)")
	fs.StringVar(&c.natsURL, "nats-url", nats.DefaultURL, "--engine nats: server URL(s), comma-separated (nats://user:password@host:4222, tls://…)")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "--engine nats: credentials file (JWT + NKey seed)")
	fs.StringVar(&c.natsTLSCA, "nats-tls-ca", "", "--engine nats: CA certificate file to verify the servers with")
	fs.StringVar(&c.natsTLSCert, "nats-tls-cert", "", "--engine nats: client certificate file (mutual TLS; with --nats-tls-key)")
	fs.StringVar(&c.natsTLSKey, "nats-tls-key", "", "--engine nats: client key file")
	fs.IntVar(&c.replicas, "nats-replicas", 1, "--engine nats: replicas of each collection's stream (3 on a 3-node cluster: a commit is acknowledged once a quorum has it)")
	fs.StringVar(&c.prefix, "nats-prefix", natskv.DefaultPrefix, "--engine nats: prefix of the streams and subjects; nodes sharing it share the collections")
	fs.DurationVar(&c.natsTimeout, "nats-timeout", natskv.DefaultTimeout, "--engine nats: bound of each JetStream request made for a client, and of a commit's wait for a lost NATS connection")
	fs.DurationVar(&c.natsBeat, "nats-heartbeat", natskv.DefaultHeartbeat, "--engine nats: how often an idle consumer hears from its server (a lost one is noticed after two); in the stream layout each open collection has one and costs a message per heartbeat, in the shared layout the node has one for all")
	fs.DurationVar(&c.natsIdle, "nats-idle-after", natskv.DefaultIdleAfter, "--engine nats: how long a collection nobody on this node reads, writes or subscribes to stays open (its state in memory; in the stream layout, its consumer on a NATS server); 0 or less: until shutdown")
	fs.StringVar(&c.natsLayout, "nats-layout", natskv.LayoutStream, "--engine nats: stream (a stream, a Raft group, per collection) or shared (every collection in one stream named after --nats-prefix, one consumer per node: many more collections per cluster, each node receiving every commit); every node sharing a prefix must use the same")
	fs.IntVar(&c.maxBatch, "nats-max-batch", natskv.DefaultMaxBatch, "--engine nats: most messages in one atomic batch (the servers' jetstream max_batch_size)")
	c.logCache = natskv.DefaultLogCache
	fs.Var(&c.logCache, "nats-log-cache", "--engine nats: bytes of each open collection's newest commits kept whole in memory; the ops of older retained commits are read from NATS when a reader needs them")
	c.recordCache = natskv.DefaultRecordCache
	fs.Var(&c.recordCache, "nats-record-cache", "--engine nats: bytes of record values each open collection keeps in memory, those of the records written last; the others keep only their id and version, and their values are read from NATS when a snapshot, catch-up or commit needs them")
	fs.IntVar(&c.recordIndex, "nats-record-index", natskv.DefaultRecordIndex, "--engine nats: how many records each open collection keeps the id and version of in memory (~110 B of memory a record), those written last; the others are read from NATS: for a get or a commit with a direct get, for a snapshot or a catch-up from before them by reading every record of the collection")
	fs.IntVar(&c.maxBacklog, "nats-max-backlog", natskv.DefaultMaxBacklog, "--engine nats, shared layout: most new messages kept for one collection while it loads; past it they are dropped and the collection loads again")
}

func (c *engineConfig) validate() error {
	switch {
	case c.engine != "bbolt" && c.engine != "nats":
		return fmt.Errorf("--engine must be bbolt or nats, not %q", c.engine)
	case c.natsLayout != natskv.LayoutStream && c.natsLayout != natskv.LayoutShared:
		return fmt.Errorf("--nats-layout must be stream or shared, not %q", c.natsLayout)
	case c.replicas < 1 || c.replicas > 5:
		return errors.New("--nats-replicas must be 1..5")
	case c.natsTimeout <= 0:
		return errors.New("--nats-timeout must be positive")
	case c.natsBeat < 500*time.Millisecond || c.natsBeat > 30*time.Second:
		return errors.New("--nats-heartbeat must be 500ms to 30s")
	case c.maxBacklog < 1:
		return errors.New("--nats-max-backlog must be positive")
	case c.logCache < 1 || c.logCache > 1<<40:
		return errors.New("--nats-log-cache must be 1B to 1TiB")
	case c.recordCache < 1 || c.recordCache > 1<<40:
		return errors.New("--nats-record-cache must be 1B to 1TiB")
	case c.recordIndex < 1:
		return errors.New("--nats-record-index must be positive")
	case (c.natsTLSCert == "") != (c.natsTLSKey == ""):
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	return nil
}

// idleAfter is --nats-idle-after as natskv.Options.IdleAfter: 0 or less
// keeps the collections open.
func (c *engineConfig) idleAfter() time.Duration {
	if c.natsIdle <= 0 {
		return -1
	}
	return c.natsIdle
}

// openedStore is the store serve runs on, and how to describe and check it.
type openedStore struct {
	store.Store
	// where names it in logs.
	where string
	// ready reports whether the store can take traffic (/readyz).
	ready func() error
	// presenceBus shares presence with the other nodes on the same
	// engine, nil for bbolt. The hub's presence registry owns it.
	presenceBus presence.Bus
}

// open opens the configured store.
func (c *engineConfig) open(ctx context.Context, data string, cfg store.Config, log *slog.Logger) (*openedStore, error) {
	if c.engine == "bbolt" {
		if err := os.MkdirAll(data, 0o750); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		path := filepath.Join(data, "viewsync.db")
		st, err := boltstore.Open(path, &boltstore.Options{Config: cfg, Logger: log})
		switch {
		case errors.Is(err, boltstore.ErrLocked):
			return nil, fmt.Errorf("open store: %s is locked: another viewsync process uses --data %s", path, data)
		case errors.Is(err, boltstore.ErrDamaged):
			return nil, fmt.Errorf("open store: %w; restore it from a backup, or move it aside to start empty", err)
		case err != nil:
			return nil, fmt.Errorf("open store: %w", err)
		}
		// Not ready while writes fail for want of space or a working
		// disk, until one succeeds again.
		return &openedStore{Store: st, where: path, ready: st.Writable}, nil
	}

	host, _ := os.Hostname()
	// The store's connection options (reconnect at once, no buffered
	// publishes, pings every 2s), then ours.
	opts := append(natskv.ConnOptions(),
		nats.Name("viewsync "+host),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats: disconnected; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats: reconnected", "server", nc.ConnectedUrlRedacted())
		}),
	)
	if c.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(c.natsCreds))
	}
	if c.natsTLSCA != "" {
		opts = append(opts, nats.RootCAs(c.natsTLSCA))
	}
	if c.natsTLSCert != "" {
		opts = append(opts, nats.ClientCert(c.natsTLSCert, c.natsTLSKey))
	}
	nc, err := nats.Connect(c.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(c.natsURL), err)
	}
	st, err := natskv.Open(ctx, natskv.Options{
		Conn:        nc,
		Prefix:      c.prefix,
		Replicas:    c.replicas,
		Config:      cfg,
		Logger:      log,
		Timeout:     c.natsTimeout,
		Heartbeat:   c.natsBeat,
		IdleAfter:   c.idleAfter(),
		MaxBatch:    c.maxBatch,
		MaxBacklog:  c.maxBacklog,
		LogCache:    int(c.logCache),
		RecordCache: int(c.recordCache),
		RecordIndex: c.recordIndex,
		Layout:      c.natsLayout,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open NATS store: %w", err)
	}
	// Presence goes between the nodes on the same connection, on core
	// NATS subjects under the prefix (PREFIX.*.p).
	bus, err := natsbus.New(natsbus.Options{Conn: nc, Prefix: c.prefix})
	if err != nil {
		st.Close()
		nc.Close()
		return nil, fmt.Errorf("presence bus: %w", err)
	}
	return &openedStore{
		Store:       natsStore{Store: st, nc: nc},
		where:       "nats " + nc.ConnectedUrlRedacted() + " prefix " + c.prefix,
		ready:       st.Ready,
		presenceBus: bus,
	}, nil
}

// natsStore is the NATS store, closing its connection after it. Embedding
// keeps its store.Watcher, through which the hub learns of other nodes'
// commits, and its store.Holder, through which the hub keeps the
// collections its subscribers follow open.
type natsStore struct {
	*natskv.Store
	nc *nats.Conn
}

func (s natsStore) Close() error {
	err := s.Store.Close()
	s.nc.Close()
	return err
}

var (
	_ store.Watcher = natsStore{}
	_ store.Holder  = natsStore{}
)
