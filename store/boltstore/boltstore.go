package boltstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/viewsync/viewsync/store"
)

// Defaults of Options.
const (
	// DefaultMaxBatch is how many commits one transaction takes at most.
	DefaultMaxBatch = 1024
	// DefaultLockTimeout is how long Open waits for another process to
	// release the file: long enough for one that is closing it, short
	// enough to tell at once that the file is in use.
	DefaultLockTimeout = time.Second
	// DefaultPageSize is the page size of new files: small, because each
	// collection's bucket, nesting the buckets of its records, log and
	// tombstones, takes at least a page of its own, and many small
	// collections are common.
	DefaultPageSize = 1024
)

// Options configures a Store. A nil *Options, or its zero value, means the
// defaults.
type Options struct {
	// Config holds the retention settings and the clock common to every
	// store implementation; zero fields take store's defaults.
	Config store.Config

	// NoSync skips fsync at every commit. UNSAFE: a commit is then
	// acknowledged before it is durable, and a crash of the machine can
	// lose acknowledged commits or leave the file corrupt. For tests and
	// benchmarks only, never for data anyone needs.
	NoSync bool

	// Logger receives the store's rare messages (a failed batch, a
	// refused file). Default: discard.
	Logger *slog.Logger

	// MaxBatch bounds how many commits (and drops) are written in one
	// transaction and made durable by one fsync. Default DefaultMaxBatch.
	MaxBatch int

	// LockTimeout bounds how long Open waits for the file lock another
	// process holds. Default DefaultLockTimeout.
	LockTimeout time.Duration

	// PageSize is the size in bytes of the pages of a file Open creates
	// (a power of two, at least 1024); a file that exists keeps the size
	// it was created with. Default DefaultPageSize.
	PageSize int
}

// Retention work done per commit, so that one commit never pays for a large
// backlog: the log and the tombstones shrink a little at every commit until
// they are within bounds again.
const (
	maxLogTrim  = 8
	maxTombTrim = 32
)

// Store is a store.Store on one bbolt file. Concurrent Apply and Drop calls
// are written by a single committer goroutine that groups them into one
// transaction and one fsync; reads are bbolt read transactions, each
// consistent at one version. Its methods are safe for concurrent use.
type Store struct {
	db       *bolt.DB
	cfg      store.Config
	log      *slog.Logger
	maxBatch int
	// epoch is the store-wide epoch: that of every collection never
	// dropped. It is fixed when the file is created.
	epoch string

	// commits and batches count the requests written and the
	// transactions that wrote them; see Stats.
	commits, batches atomic.Uint64

	// closed is set by Close before it stops the committer; reads check it.
	closed atomic.Bool

	// mu guards queue and closing. It is never held while waiting for
	// anything else, so it takes no part in any lock order.
	mu sync.Mutex
	// queue holds the requests not yet taken by the committer, in arrival
	// order.
	queue []*request
	// closing is set once Close has started: no request is queued after.
	closing bool

	// wake has room for one signal: "the queue may be non-empty".
	wake chan struct{}
	// stop is closed by Close to stop the committer.
	stop chan struct{}
	// exited is closed by the committer when it returns.
	exited chan struct{}

	// health tells whether the store can write; see Writable.
	health health
}

var (
	_ store.Store     = (*Store)(nil)
	_ store.Positions = (*Store)(nil)
	_ store.Keys      = (*Store)(nil)
)

// Open opens the store in the bbolt file at path, creating the file (mode
// 0600, its missing parent directories 0750) and a fresh store-wide epoch
// if it does not exist. opts may be nil. The file is locked until Close;
// another Open of it waits up to Options.LockTimeout, then fails with
// ErrLocked. A file that is truncated, or whose pages that every request
// reads are damaged, is refused with ErrDamaged; see checkPages for what is
// read.
func Open(path string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.PageSize <= 0 {
		o.PageSize = DefaultPageSize
	}
	if o.PageSize < 1024 || o.PageSize&(o.PageSize-1) != 0 {
		return nil, fmt.Errorf("boltstore: page size %d is not a power of two of at least 1024", o.PageSize)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		// Check the file read-only first: a read-write open reads the
		// freelist page, which may lie past the end of a truncated file.
		if err := checkFile(path, &o); err != nil {
			o.Logger.Error("boltstore: refusing file", "path", path, "err", err)
			return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
		}
	}
	db, err := openDB(path, &o, false)
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{
		db:       db,
		cfg:      o.Config.WithDefaults(),
		log:      o.Logger,
		maxBatch: o.MaxBatch,
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	if err := guard(func() error { return db.Update(s.init) }); err != nil {
		s.log.Error("boltstore: refusing file", "path", path, "err", err)
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// checkFile opens the existing file at path read-only and checks it
// (see checkPages).
func checkFile(path string, o *Options) error {
	db, err := openDB(path, o, true)
	if err != nil {
		return err
	}
	err = guard(func() error { return db.View(checkPages) })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// openDB opens the bbolt file, read-only or not. A panic of bbolt on a damaged file (or a
// fault on a page past the end of a truncated one) comes back as an error
// wrapping ErrDamaged, and the file is then closed, which releases its
// lock; so do bbolt's own verdicts on a file that is not a bbolt file or
// whose meta pages are both damaged.
func openDB(path string, o *Options, readOnly bool) (*bolt.DB, error) {
	var file *os.File
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      o.LockTimeout,
			NoSync:       o.NoSync,
			FreelistType: bolt.FreelistMapType,
			PageSize:     o.PageSize,
			ReadOnly:     readOnly,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
		return err
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, ErrLocked
	case errors.Is(err, ErrDamaged):
		if file != nil {
			// bbolt panicked with the file open and locked.
			file.Close()
		}
		return nil, err
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), strings.Contains(err.Error(), "file size too small"):
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return nil, err
}

// checkPages reads what is read before anything else, so that a damaged file
// is refused at Open rather than found by requests: the file must hold
// every page its meta page counts, and the root bucket, every top-level
// bucket (the settings, each collection) and every bucket nested in them
// must be readable down to their first and last keys. It reads a few
// pages per collection, not the whole file: damage elsewhere is found by
// the requests that read it, which then fail with ErrDamaged (see guard).
func checkPages(tx *bolt.Tx) error {
	fi, err := os.Stat(tx.DB().Path())
	if err != nil {
		return err
	}
	if fi.Size() < tx.Size() {
		return fmt.Errorf("%w: it has %d bytes where its pages take %d: it was cut short", ErrDamaged, fi.Size(), tx.Size())
	}
	return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if b == nil {
			return fmt.Errorf("%w: top-level key %q is not a bucket", ErrDamaged, name)
		}
		return b.ForEachBucket(func(k []byte) error {
			c := b.Bucket(k).Cursor()
			c.First()
			c.Last()
			return nil
		})
	})
}

// init reads the store-wide settings, writing them first into a new file.
func (s *Store) init(tx *bolt.Tx) error {
	b := tx.Bucket(storeBucket)
	if b == nil {
		var err error
		if b, err = tx.CreateBucket(storeBucket); err != nil {
			return err
		}
		if err := b.Put(keyFormat, []byte(strconv.Itoa(formatVersion))); err != nil {
			return err
		}
		if err := b.Put(keyEpoch, []byte(newEpoch(""))); err != nil {
			return err
		}
	}
	if f := string(b.Get(keyFormat)); f != strconv.Itoa(formatVersion) {
		return fmt.Errorf("file has layout format %q, this version reads %d", f, formatVersion)
	}
	epoch := b.Get(keyEpoch)
	if len(epoch) == 0 {
		return errors.New("file has no store epoch")
	}
	s.epoch = string(epoch)
	return nil
}

// Close fails the commits still queued with ErrClosed, waits for the batch
// being written (its commits are answered normally), stops the committer
// and closes the file. Calls after Close, Close included, return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return fmt.Errorf("boltstore: close: %w", store.ErrClosed)
	}
	s.closing = true
	pending := s.queue
	s.queue = nil
	s.mu.Unlock()

	s.closed.Store(true)
	for _, r := range pending {
		if r.state.CompareAndSwap(stateQueued, stateDone) {
			r.err = store.ErrClosed
			close(r.done)
		}
	}
	close(s.stop)
	<-s.exited
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close: %w", err)
	}
	return nil
}

// Stats counts a store's writes since Open.
type Stats struct {
	// Commits is how many commits and drops were made durable.
	Commits uint64
	// Batches is how many transactions (and so fsyncs) wrote them;
	// Commits/Batches is the mean batch size.
	Batches uint64
}

// Stats returns the store's write counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Batches: s.batches.Load()}
}

// closedErr maps bbolt's "database not open" to store.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}
