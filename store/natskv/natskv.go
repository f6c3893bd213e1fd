package natskv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
)

// Options configure a Store.
type Options struct {
	// Conn is an established connection to use. The Store does not close
	// it. When nil, Open connects to URL with NATSOptions and closes that
	// connection on Close.
	//
	// Connect it with ConnOptions, as Open connects. In particular, a
	// connection that buffers publishes while it reconnects (the default
	// of nats.Connect) may deliver a commit long after it was sent, so a
	// commit whose acknowledgement was lost, and whose traces the stream
	// no longer holds, cannot then be tried again safely and fails with
	// ErrOutcomeUnknown instead.
	Conn *nats.Conn
	// URL is the server to connect to when Conn is nil; default
	// nats.DefaultURL.
	URL string
	// NATSOptions are passed to nats.Connect when Conn is nil (credentials,
	// TLS, reconnect policy, ...), after ConnOptions.
	NATSOptions []nats.Option
	// Prefix starts every stream name (PREFIX_COLLECTION; the shared
	// layout's stream is PREFIX) and subject (PREFIX.COLLECTION.EPOCH.…)
	// of the store; default "VS". Stores that
	// share a prefix on one server (or cluster) share their collections.
	Prefix string
	// Replicas is the replication factor of the collections' streams;
	// default 1. It applies to streams this store creates.
	Replicas int
	// Config holds the retention settings and the clock; zero fields mean
	// their defaults (see store.Config.WithDefaults). Every store sharing a
	// prefix should use the same Config.
	Config store.Config
	// Logger receives warnings (reloads, failed trims); default: discard.
	Logger *slog.Logger
	// Timeout bounds each JetStream API call made on a caller's behalf
	// (opening a collection, Drop), and how long a commit waits for the
	// connection to come back before it fails; default 10s.
	Timeout time.Duration
	// AttemptTimeout bounds one attempt at a commit: the wait for its
	// batch's acknowledgement, after which the store looks for the batch
	// and tries again (a commit is made once, whatever the store misses),
	// and each request made while the stream changes leader. Default 2s,
	// at most Timeout. It is what a commit in flight to a stream leader
	// that vanishes may wait for in excess of the election.
	AttemptTimeout time.Duration
	// Heartbeat is how often the server tells a consumer that it is still
	// there while nothing is written; a consumer that hears nothing for
	// two heartbeats is replaced (the server holding it was lost).
	// Default 2s, 500ms to 30s. In the stream layout each open collection
	// has a consumer, so it costs one message of about 75 bytes per
	// heartbeat while idle, and some CPU on the node and the server (see
	// docs/deploy.md); in the shared layout a process has one consumer
	// for all its collections.
	Heartbeat time.Duration
	// MaxBatch is the most messages one atomic batch may hold: it must not
	// exceed the server's jetstream max_batch_size (default 1000). Default
	// 1000. See the package documentation for what a commit needs.
	MaxBatch int
	// IdleAfter is how long a collection stays open once nothing on this
	// process reads, writes or holds it (see Store.Hold): then its
	// follower stops, its consumer (if it has one) is deleted and its
	// state is dropped, until it is used again, when it is replayed from
	// its stream as on first use. A collection with commits queued, in
	// flight or awaited is not released. One sweep of every collection
	// releases them, every IdleAfter/2 (10ms to 30s), so a collection goes
	// between IdleAfter and that much later. Default 2m; a negative value
	// keeps every collection open until Close.
	IdleAfter time.Duration
	// MaxBacklog bounds, in the shared layout, the messages of the
	// stream that wait for one collection while it loads (they are
	// applied once it has): past it they are dropped and the collection
	// loads again. Default 65,536 (DefaultMaxBacklog); a message is a
	// record written or a part of a log entry.
	MaxBacklog int
	// LogCache bounds, per open collection, the bytes of retained commits
	// (their size as JSON) whose ops stay in memory, the newest: older
	// ones keep only their version, time, size and stream sequence, and
	// Changes reads their ops from the stream (a direct get per 1,024
	// commits). Default 64 KiB (DefaultLogCache); a negative value keeps
	// every retained commit whole in memory.
	LogCache int
	// RecordCache bounds, per open collection, the bytes of record values
	// that stay in memory, those of the records written last: the others
	// keep only their id and version (see RecordIndex), and Get, Snapshot
	// and CatchUp read their values from the stream (a direct get per
	// 1,024 records).
	// Default 32 MiB (DefaultRecordCache); a negative value keeps every
	// value in memory.
	RecordCache int
	// RecordIndex bounds, per open collection, the records whose id and
	// version stay in memory, those written last: Get, Snapshot and
	// CatchUp read the others from the stream (Snapshot and an old
	// CatchUp read every record message in it, by sequence), and the
	// committer reads the versions of those its commits check or
	// replace (a direct get a batch). Default 262,144
	// (DefaultRecordIndex), about 30 MiB; a negative value keeps every
	// record's.
	RecordIndex int
	// Layout maps collections onto streams: LayoutStream (the default)
	// gives each collection a stream of its own, PREFIX_COLLECTION, which
	// is a Raft group of its own on each of its servers; LayoutShared keeps
	// every collection of the prefix in one stream, PREFIX, which Open
	// creates if missing, so that a cluster holds many more collections
	// (see docs/deploy.md). Every store sharing a prefix must use the
	// same layout: the server refuses the other layout's streams, whose
	// subjects overlap.
	Layout string
}

// Layouts of Options.Layout.
const (
	LayoutStream = "stream"
	LayoutShared = "shared"
)

// Defaults of Options.
const (
	DefaultPrefix         = "VS"
	DefaultTimeout        = 10 * time.Second
	DefaultAttemptTimeout = 2 * time.Second
	DefaultHeartbeat      = 2 * time.Second
	DefaultMaxBacklog     = 1 << 16
	DefaultLogCache       = 64 << 10
	DefaultRecordCache    = 32 << 20
	DefaultRecordIndex    = 1 << 18
	DefaultMaxBatch       = 1000
	DefaultIdleAfter      = 2 * time.Minute
)

// ConnOptions are the connection options a Store's connection should
// have, and those Open connects with, before Options.NATSOptions:
// reconnect forever, to the next server at once and to one tried a moment
// ago after 250ms; notice a server gone silent within 4-6s (a ping every
// 2s, at most 2 unanswered); give up connecting to one after 2s; and fail
// a publish made while reconnecting rather than hold it back (see
// Options.Conn).
func ConnOptions() []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.ReconnectBufSize(-1),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.Timeout(2 * time.Second),
	}
}

// Store is a store.Store and store.Watcher on NATS JetStream. It is safe
// for concurrent use.
type Store struct {
	// id names the store in contention announcements (fair.go).
	id       string
	cfg      store.Config
	prefix   string
	replicas int
	timeout  time.Duration
	attempt  time.Duration // Options.AttemptTimeout
	beat     time.Duration // Options.Heartbeat
	maxBatch int
	// logCache is Options.LogCache, math.MaxInt when it keeps everything;
	// logReads counts the commits Changes read from the stream.
	logCache int
	logReads atomic.Uint64
	// recordCache is Options.RecordCache, math.MaxInt when it keeps
	// everything; valueReads counts the values read from the stream.
	recordCache int
	valueReads  atomic.Uint64
	// recordIndex is Options.RecordIndex, math.MaxInt when it keeps
	// every record's; scanReads counts the record messages read by
	// sequence (see scanRecords).
	recordIndex int
	scanReads   atomic.Uint64
	log         *slog.Logger
	// idle is Options.IdleAfter, 0 when collections are kept open.
	idle time.Duration
	// shared: the shared layout (Options.Layout), every collection in
	// the stream named prefix, whose duplicate window is sharedDup.
	shared    bool
	sharedDup time.Duration
	// born is the origin of the collections' lastUse (see now).
	born time.Time

	nc      *nats.Conn
	ownConn bool
	js      jetstream.JetStream
	watch   *watchHub
	subs    []*nats.Subscription
	// feed follows every open collection in the shared layout (nil in
	// the stream layout, where each has a consumer of its own).
	feed *feed

	// link ends whenever the connection is lost (it is then replaced):
	// answers to requests made on it will not come.
	link   atomic.Pointer[term]
	status chan nats.Status
	// meta ends whenever the cluster elects a new JetStream meta leader
	// (it is then replaced).
	meta atomic.Pointer[term]

	// ctx is done when the store closes; goroutines are counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	// colls holds the open collections, by name.
	colls map[string]*coll
	// streams maps stream names to open collections (the stream layout's
	// only).
	streams map[string]*coll
	// holds counts the holds of each held collection (see Hold).
	holds map[string]int
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
	_ store.Keys    = (*Store)(nil)
	_ store.Holder  = (*Store)(nil)
)

// Open connects to JetStream (or uses opts.Conn) and returns a Store.
// Collections are opened lazily, on first use.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natskv: open: %w", err)
	}
	s := &Store{
		id:          nuid.Next(),
		cfg:         opts.Config.WithDefaults(),
		prefix:      opts.Prefix,
		replicas:    opts.Replicas,
		timeout:     opts.Timeout,
		attempt:     opts.AttemptTimeout,
		beat:        opts.Heartbeat,
		maxBatch:    opts.MaxBatch,
		logCache:    opts.LogCache,
		recordCache: opts.RecordCache,
		recordIndex: opts.RecordIndex,
		log:         opts.Logger,
		idle:        opts.IdleAfter,
		born:        time.Now(),
		colls:       make(map[string]*coll),
		streams:     make(map[string]*coll),
		holds:       make(map[string]int),
		watch:       newWatchHub(),
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if err := validPrefix(s.prefix); err != nil {
		return nil, err
	}
	if s.replicas <= 0 {
		s.replicas = 1
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.attempt <= 0 {
		s.attempt = DefaultAttemptTimeout
	}
	s.attempt = min(s.attempt, s.timeout)
	if s.beat <= 0 {
		s.beat = DefaultHeartbeat
	}
	s.beat = min(max(s.beat, 500*time.Millisecond), 30*time.Second)
	if s.maxBatch <= 0 {
		s.maxBatch = DefaultMaxBatch
	}
	s.logCache = cacheBound(s.logCache, DefaultLogCache)
	s.recordCache = cacheBound(s.recordCache, DefaultRecordCache)
	s.recordIndex = cacheBound(s.recordIndex, DefaultRecordIndex)
	switch {
	case s.idle == 0:
		s.idle = DefaultIdleAfter
	case s.idle < 0:
		s.idle = 0
	}
	layout := opts.Layout
	if layout == "" {
		layout = LayoutStream
	}
	switch layout {
	case LayoutStream:
	case LayoutShared:
		s.shared = true
	default:
		return nil, fmt.Errorf("natskv: open: layout %q is neither %q nor %q", opts.Layout, LayoutStream, LayoutShared)
	}
	if s.maxBatch < 3 {
		return nil, fmt.Errorf("natskv: open: MaxBatch %d is too small", s.maxBatch)
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.nc = opts.Conn
	if s.nc == nil {
		url := opts.URL
		if url == "" {
			url = nats.DefaultURL
		}
		nc, err := nats.Connect(url, append(ConnOptions(), opts.NATSOptions...)...)
		if err != nil {
			return nil, fmt.Errorf("natskv: open: connect to %s: %w", url, err)
		}
		s.nc, s.ownConn = nc, true
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		s.closeConn()
		return nil, fmt.Errorf("natskv: open: %w", err)
	}
	s.js = js
	if _, err := js.AccountInfo(ctx); err != nil {
		s.closeConn()
		return nil, fmt.Errorf("natskv: open: JetStream not available: %w", err)
	}
	var sharedLast uint64
	if s.shared {
		if sharedLast, err = s.openShared(ctx); err != nil {
			s.closeConn()
			return nil, fmt.Errorf("natskv: open: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.shared {
		backlog := opts.MaxBacklog
		if backlog <= 0 {
			backlog = DefaultMaxBacklog
		}
		if err := s.startFeed(ctx, sharedLast, backlog); err != nil {
			s.cancel()
			s.wg.Wait()
			s.closeConn()
			return nil, fmt.Errorf("natskv: open: follow stream %s: %w", s.prefix, err)
		}
	}

	// Stream advisories tell of collections dropped or re-created by other
	// processes at once; without them (no permission) the followers notice
	// on their own, later.
	// A stream's new leader, announced, wakes its committer at once
	// rather than after an attempt's time; the cluster's new meta leader
	// wakes requests waiting for it.
	s.link.Store(newTerm())
	s.meta.Store(newTerm())
	advisories := []struct {
		subj string
		fn   nats.MsgHandler
	}{
		{"$JS.EVENT.ADVISORY.STREAM.DELETED.*", s.advisory},
		{"$JS.EVENT.ADVISORY.STREAM.CREATED.*", s.advisory},
		{"$JS.EVENT.ADVISORY.STREAM.UPDATED.*", s.advisory},
		{"$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.*", s.elected},
		{contentionFilter(s.prefix), s.contention},
		{createdFilter(s.prefix), s.created},
		{"$JS.EVENT.ADVISORY.DOMAIN.LEADER_ELECTED", func(*nats.Msg) {
			s.log.Debug("natskv: JetStream meta leader elected")
			nextTerm(&s.meta)
		}},
	}
	for _, a := range advisories {
		sub, err := s.nc.Subscribe(a.subj, a.fn)
		if err != nil {
			s.log.Warn("natskv: no stream advisories", "subject", a.subj, "err", err)
			continue
		}
		s.subs = append(s.subs, sub)
	}

	s.status = s.nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED)
	s.wg.Go(s.watchLink)
	s.wg.Go(func() { s.watch.run(s.ctx.Done()) })
	if s.idle > 0 {
		s.wg.Go(s.sweep)
	}
	return s, nil
}

// watchLink ends the connection's term each time it is lost, until the
// store closes.
func (s *Store) watchLink() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.status:
			nextTerm(&s.link)
		}
	}
}

// openShared creates the shared layout's stream, unless it exists, and
// checks it. It returns the stream's last sequence.
func (s *Store) openShared(ctx context.Context) (uint64, error) {
	cfg := s.sharedConfig()
	// Looked up first: creating it again would announce it as created,
	// which makes every store re-sync its collections.
	stream, err := s.js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = s.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			stream, err = s.js.Stream(ctx, cfg.Name)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	info := stream.CachedInfo().Config
	if info.Metadata[metaLayout] != LayoutShared || info.Metadata[metaFormat] != formatVersion || !slices.Equal(info.Subjects, cfg.Subjects) {
		return 0, fmt.Errorf("stream %s is not a viewsync shared stream (subjects %v, metadata %v)", cfg.Name, info.Subjects, info.Metadata)
	}
	s.sharedDup = info.Duplicates
	return stream.CachedInfo().State.LastSeq, nil
}

// sharedConfig is the configuration of the shared layout's stream: that
// of a collection's stream in the stream layout, for every collection.
func (s *Store) sharedConfig() jetstream.StreamConfig {
	cfg := s.baseStreamConfig(s.prefix, "viewsync collections", sharedSubjects(s.prefix), map[string]string{
		metaLayout: LayoutShared,
		metaFormat: formatVersion,
	})
	// One consumer per process (its feed), which must not be capped by
	// the servers' default bound per stream (1,000; a stream's own bound
	// overrides it, unlimited does not).
	cfg.MaxConsumers = sharedMaxConsumers
	return cfg
}

// sharedMaxConsumers bounds the consumers of the shared stream: no bound
// in practice (the account's applies).
const sharedMaxConsumers = 1 << 30

// advisory kicks the collections whose stream was deleted or created.
func (s *Store) advisory(m *nats.Msg) {
	for _, c := range s.advised(m) {
		c.resync()
	}
}

// elected tells the collections whose stream has a new leader.
func (s *Store) elected(m *nats.Msg) {
	for _, c := range s.advised(m) {
		c.s.log.Debug("natskv: stream leader elected", "collection", c.name)
		c.leaderElected()
	}
}

// created makes the collection whose stream another process announced it
// created follow it, if it holds the collection as never written.
func (s *Store) created(m *nats.Msg) {
	// PREFIX.ESCAPED.n → collection ESCAPED, unescaped.
	token, ok := strings.CutSuffix(strings.TrimPrefix(m.Subject, s.prefix+"."), ".n")
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.colls[unescape(token)]
	s.mu.Unlock()
	if c != nil && c.isAbsent() {
		c.resync()
	}
}

// advised returns the open collections whose stream an advisory is
// about: in the shared layout, every one when it is the shared stream.
func (s *Store) advised(m *nats.Msg) []*coll {
	name := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared {
		if name != s.prefix {
			return nil
		}
		return slices.Collect(maps.Values(s.colls))
	}
	if c := s.streams[name]; c != nil {
		return []*coll{c}
	}
	return nil
}

// closeConn closes the connection if the store opened it.
func (s *Store) closeConn() {
	if s.ownConn {
		s.nc.Close()
	}
}

// serve calls fn whenever kick is signalled (see signal), until done is
// closed.
func serve(done <-chan struct{}, kick <-chan struct{}, fn func()) {
	for {
		select {
		case <-done:
			return
		case <-kick:
		}
		fn()
	}
}

// signal wakes the goroutine served by kick, a channel with room for one
// signal, unless it is due to wake already.
func signal(kick chan<- struct{}) {
	select {
	case kick <- struct{}{}:
	default:
	}
}

// streamConfig is the configuration of a collection's stream in epoch.
func (s *Store) streamConfig(c *coll, epoch string) jetstream.StreamConfig {
	return s.baseStreamConfig(c.names.stream, "viewsync collection "+c.name, c.names.subjects(epoch), map[string]string{
		metaEpoch:      epoch,
		metaCollection: c.name,
		metaFormat:     formatVersion,
	})
}

// baseStreamConfig is what every stream of the store has, in either
// layout: file storage with the store's replicas, the last message of
// each subject kept, atomic batches, and direct gets, which any replica
// answers for a follower that lost its consumer (tip.go).
func (s *Store) baseStreamConfig(name, description, subject string, meta map[string]string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:               name,
		Description:        description,
		Subjects:           []string{subject},
		Storage:            jetstream.FileStorage,
		Replicas:           s.replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardOld,
		MaxMsgsPerSubject:  1,
		AllowAtomicPublish: true,
		AllowDirect:        true,
		Metadata:           meta,
	}
}

// chunkSize is the most bytes of a commit's JSON one log message holds.
func (s *Store) chunkSize() int {
	return max(4096, int(s.nc.MaxPayload())-4096)
}

// coll returns the open collection, opening it on first use (or first use
// since it was released), once its state is loaded. The collection is in
// use, and so not released, until the caller calls its unuse.
func (s *Store) coll(ctx context.Context, name string) (*coll, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := protocol.ValidateCollection(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	c := s.colls[name]
	if c == nil {
		c = s.openLocked(name)
	}
	c.users.Add(1)
	s.mu.Unlock()
	err := c.waitReady(ctx)
	if err == nil {
		return c, nil
	}
	c.unuse()
	c.mu.RLock()
	failed := c.initErr != nil
	c.mu.RUnlock()
	if !failed || ctx.Err() != nil {
		return nil, err
	}
	// Opening failed: forget the collection; a later call tries again.
	s.mu.Lock()
	if s.colls[name] == c {
		delete(s.colls, name)
		if !s.shared {
			delete(s.streams, c.names.stream)
		}
	}
	s.mu.Unlock()
	c.stop()
	c.cancel()
	return nil, err
}

// cacheBound is a cache's bound as Options gives it: 0 means def, a
// negative value no bound (math.MaxInt).
func cacheBound(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return math.MaxInt
	}
	return v
}

// openLocked opens the collection name: it starts loading its state.
// s.mu must be held.
func (s *Store) openLocked(name string) *coll {
	c := newColl(s, name)
	c.lastUse.Store(s.now())
	s.colls[name] = c
	if !s.shared {
		s.streams[c.names.stream] = c
	}
	s.wg.Go(c.open)
	return c
}

// now is the time a collection's use ends, for lastUse: monotonic
// nanoseconds since the store opened.
func (s *Store) now() int64 { return int64(time.Since(s.born)) }

// withColl returns what fn returns for the collection, open and in use
// meanwhile. An error is wrapped as "natskv: " + what() + ": " + err.
func withColl[T any](ctx context.Context, s *Store, collection string, what func() string, fn func(c *coll) (T, error)) (T, error) {
	c, err := s.coll(ctx, collection)
	if err == nil {
		defer c.unuse()
		var v T
		if v, err = fn(c); err == nil {
			return v, nil
		}
	}
	var zero T
	return zero, fmt.Errorf("natskv: %s: %w", what(), err)
}

// locked returns what fn reads from c's state, under c.mu: at one
// version.
func locked[T any](c *coll, fn func(st *state) (T, error)) (T, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		var zero T
		return zero, store.ErrClosed
	}
	return fn(c.st)
}

// read returns what fn reads from the collection's state, at one version
// (see withColl).
func read[T any](ctx context.Context, s *Store, collection string, what func() string, fn func(st *state) (T, error)) (T, error) {
	return withColl(ctx, s, collection, what, func(c *coll) (T, error) { return locked(c, fn) })
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context, collection string) (protocol.Head, error) {
	return read(ctx, s, collection, func() string { return "head of " + collection },
		func(st *state) (protocol.Head, error) { return st.Head(), nil })
}

// Get implements store.Store. A value no longer in memory
// (Options.RecordCache), or a record (Options.RecordIndex), it reads from
// the stream.
func (s *Store) Get(ctx context.Context, collection, id string) (protocol.Record, error) {
	return withColl(ctx, s, collection, func() string { return "get " + collection + "/" + id }, func(c *coll) (protocol.Record, error) {
		return c.get(ctx, id)
	})
}

// Snapshot implements store.Store. The values no longer in memory
// (Options.RecordCache), or the records (Options.RecordIndex), it reads
// from the stream, once for the callers that ask at the same time.
func (s *Store) Snapshot(ctx context.Context, collection string) (protocol.Snapshot, error) {
	return withColl(ctx, s, collection, func() string { return "snapshot of " + collection }, func(c *coll) (protocol.Snapshot, error) {
		return c.snapshot(ctx)
	})
}

// CatchUp implements store.Store. The values no longer in memory
// (Options.RecordCache), or the records (Options.RecordIndex), it reads
// from the stream.
func (s *Store) CatchUp(ctx context.Context, collection string, after uint64) (protocol.CatchUp, error) {
	return withColl(ctx, s, collection, func() string { return fmt.Sprintf("catch-up of %s after %d", collection, after) }, func(c *coll) (protocol.CatchUp, error) {
		return c.readCatchUp(ctx, after)
	})
}

// Apply implements store.Store. It also checks the ops with
// protocol.NormalizeOp, so that a malformed op fails (wrapping one of the
// protocol's errors) instead of corrupting the collection. A put whose
// value does not fit in one NATS message fails with protocol.ErrTooLarge.
func (s *Store) Apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64) (store.Applied, error) {
	return s.apply(ctx, collection, ops, ifs, nil)
}

// ApplyKeyed implements store.Keys: the key is a message (k.ID, its
// answer the data) of the same atomic batch as the commit, so that every
// process that sees the commit sees the key. Keys are bounded by
// Config.MaxKeys per collection.
func (s *Store) ApplyKeyed(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, k store.NewKey) (store.Applied, error) {
	if err := k.Check(); err != nil {
		return store.Applied{}, fmt.Errorf("natskv: apply to %s: %w", collection, err)
	}
	return s.apply(ctx, collection, ops, ifs, &k)
}

// Key implements store.Keys. It first waits until this process has read
// everything the collection's stream held when it was called, so that it
// sees the keys other processes recorded: it costs a request to the
// stream's leader.
func (s *Store) Key(ctx context.Context, collection, id string) (store.Key, error) {
	fail := func(err error) (store.Key, error) {
		return store.Key{}, fmt.Errorf("natskv: key %s of %s: %w", id, collection, err)
	}
	c, err := s.coll(ctx, collection)
	if err != nil {
		return fail(err)
	}
	defer c.unuse()
	// Catch up with the stream as it is now (creating nothing: a
	// collection never written has no stream, and no keys).
	ictx, cancel := c.attemptCtx(ctx)
	si, err := c.find(ictx)
	cancel()
	if errors.Is(err, errNoStream) {
		return fail(store.ErrNotFound)
	}
	if err != nil {
		return fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := c.waitFor(wctx, func() bool {
		return c.broken || c.st.Epoch != si.epoch || c.st.lastSeq >= si.lastSeq
	}); err != nil {
		return fail(err)
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return fail(store.ErrClosed)
	}
	if c.st == nil {
		return fail(store.ErrNotFound)
	}
	k, ok := c.st.keys.Get(id, s.cfg.Now(), s.cfg.KeyTTL)
	if !ok {
		return fail(store.ErrNotFound)
	}
	k.Answer = slices.Clone(k.Answer)
	return k, nil
}

// apply is Apply, recording k with the commit when not nil.
func (s *Store) apply(ctx context.Context, collection string, ops []protocol.Op, ifs map[string]uint64, k *store.NewKey) (store.Applied, error) {
	fail := func(err error) (store.Applied, error) {
		return store.Applied{}, fmt.Errorf("natskv: apply to %s: %w", collection, err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := protocol.ValidateCollection(collection); err != nil {
		return fail(err)
	}
	if len(ops) == 0 {
		return fail(store.ErrEmptyCommit)
	}
	maxValue := int(s.nc.MaxPayload()) - 1024
	own := make([]protocol.Op, len(ops))
	ids := make(map[string]struct{}, len(ops))
	for i, op := range ops {
		n, err := protocol.NormalizeOp(op, 0, maxValue)
		if err != nil {
			return fail(fmt.Errorf("op %d: %w", i, err))
		}
		if n.Value != nil {
			n.Value = append([]byte(nil), n.Value...)
		}
		own[i] = n
		ids[n.ID] = struct{}{}
	}
	ifsCopy := make(map[string]uint64, len(ifs))
	for id, v := range ifs {
		ifsCopy[id] = v
	}
	r := &request{ops: own, ifs: ifsCopy, done: make(chan struct{}), key: k}
	r.opsJSON = protocol.AppendOps(nil, own)
	chunk := s.chunkSize()
	r.msgs = len(ids) + (len(r.opsJSON)+protocol.CommitJSONOverhead+chunk-1)/chunk
	if k != nil {
		r.msgs++
	}

	c, err := s.coll(ctx, collection)
	if err != nil {
		return fail(err)
	}
	// In use until answered: a collection is not released with a
	// request queued or in flight.
	defer c.unuse()
	c.enqueue(r)
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqPending, reqCancelled) {
			return fail(ctx.Err())
		}
		<-r.done
	case <-s.ctx.Done():
		if r.state.CompareAndSwap(reqPending, reqCancelled) {
			return fail(store.ErrClosed)
		}
		<-r.done
	}
	return r.res, r.err
}

// Drop implements store.Store: it gives the collection's stream a fresh
// epoch (its subjects and metadata), which fences off writers of the old
// one, then purges every message of the old epoch.
func (s *Store) Drop(ctx context.Context, collection string) (protocol.Head, error) {
	fail := func(err error) (protocol.Head, error) {
		return protocol.Head{}, fmt.Errorf("natskv: drop %s: %w", collection, err)
	}
	c, err := s.coll(ctx, collection)
	if err != nil {
		return fail(err)
	}
	defer c.unuse()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	c.mu.RLock()
	old := c.st.Epoch
	c.mu.RUnlock()
	// Once started, Drop runs to its end whatever the caller's context.
	dctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	if err := c.replace(dctx, old); err != nil {
		return fail(err)
	}
	si, err := c.info(dctx, old)
	if err != nil {
		return fail(err)
	}
	if err := c.restart(dctx, si, false); err != nil {
		return fail(err)
	}
	var h protocol.Head
	err = c.waitFor(dctx, func() bool {
		if c.st.Epoch == si.epoch && c.fol.ld == nil && c.fol.epoch == c.st.Epoch {
			h = c.st.Head()
			return true
		}
		return c.st.Epoch != old && c.st.Epoch != si.epoch
	})
	if err != nil {
		return fail(err)
	}
	if h.Epoch == "" {
		// Dropped again meanwhile, by another process.
		c.mu.RLock()
		h = c.st.Head()
		c.mu.RUnlock()
	}
	return h, nil
}

// Ready reports whether the store can take traffic: nil while its
// connection to NATS is up; an error matching store.ErrUnavailable while
// it is down (reconnecting) and once closed. A stream electing a leader
// does not make it unready: reads and subscriptions go on, and commits
// wait for the new leader.
func (s *Store) Ready() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("natskv: %w: %w", store.ErrUnavailable, store.ErrClosed)
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("natskv: %w: NATS connection %s", store.ErrUnavailable, st)
	}
	return nil
}

// Watch implements store.Watcher. fn must not call stop.
func (s *Store) Watch(fn func(store.Event)) (stop func()) {
	return s.watch.add(fn)
}

// Close implements store.Store: it stops following the collections, fails
// queued commits with store.ErrClosed and closes the connection if Open
// made it. A second Close returns store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("natskv: close: %w", store.ErrClosed)
	}
	s.closed = true
	colls := make([]*coll, 0, len(s.colls))
	for _, c := range s.colls {
		colls = append(colls, c)
	}
	s.mu.Unlock()
	s.cancel()
	if s.feed != nil {
		s.feed.stop()
	}
	for _, c := range colls {
		c.stop()
	}
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	s.wg.Wait()
	s.nc.RemoveStatusListener(s.status)
	for _, c := range colls {
		c.stop() // a follower started while closing
	}
	// Nothing opens a collection once closed: let the states go, should
	// the Store itself stay referenced.
	s.mu.Lock()
	clear(s.colls)
	clear(s.streams)
	s.mu.Unlock()
	s.closeConn()
	return nil
}
