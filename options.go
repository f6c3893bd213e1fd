package viewsync

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/viewsync/viewsync/fanout"
	"github.com/viewsync/viewsync/filter"
	"github.com/viewsync/viewsync/idem"
	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
)

// Limits bound what one write may carry. The zero value of a field means its
// default.
type Limits struct {
	// MaxOpsPerCommit bounds the ops of one commit. Default 1000.
	MaxOpsPerCommit int
	// MaxIDBytes bounds a record id, at most protocol.MaxIDLen (256). Default 256.
	MaxIDBytes int
	// MaxValueBytes bounds one record value (compact JSON). Default 256 KiB.
	MaxValueBytes int
	// MaxValueDepth bounds the nesting of arrays and objects in a record
	// value, a merge patch or a call's argument, at most
	// protocol.MaxValueDepth (512). Default 32: with the few levels an
	// answer wraps around a value, what every common client library
	// decodes with its default depth limit.
	MaxValueDepth int
	// MaxCommitBytes bounds one commit: the sum of its ops' ids and
	// values (protocol.CommitSize). It bounds what one page of history
	// may hold beyond its byte bound (a commit larger than a page comes
	// alone). Default 4 MiB.
	MaxCommitBytes int
	// Filter bounds the filters of views (where=, a subscription's
	// where): their bytes, nesting and terms. Zero fields mean filter's
	// defaults.
	Filter filter.Limits
}

// Defaults of Limits.
const (
	DefaultMaxOpsPerCommit = 1000
	DefaultMaxIDBytes      = 256
	DefaultMaxValueBytes   = 256 << 10
	DefaultMaxValueDepth   = 32
	DefaultMaxCommitBytes  = 4 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MaxOpsPerCommit <= 0 {
		l.MaxOpsPerCommit = DefaultMaxOpsPerCommit
	}
	if l.MaxIDBytes <= 0 || l.MaxIDBytes > DefaultMaxIDBytes {
		l.MaxIDBytes = DefaultMaxIDBytes
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultMaxValueBytes
	}
	if l.MaxValueDepth <= 0 {
		l.MaxValueDepth = DefaultMaxValueDepth
	}
	if l.MaxCommitBytes <= 0 {
		l.MaxCommitBytes = DefaultMaxCommitBytes
	}
	return l
}

// values returns the limits that bound an op or a value, for package
// protocol's checks (see protocol.Limits).
func (l Limits) values() protocol.Limits {
	return protocol.Limits{MaxIDBytes: l.MaxIDBytes, MaxValueBytes: l.MaxValueBytes, MaxValueDepth: l.MaxValueDepth}
}

// Metrics receives the hub's measurements. Package metrics adapts it to
// Prometheus; the default discards everything.
type Metrics interface {
	// Committed is called after each durable commit.
	Committed(collection string, ops int, version uint64, took time.Duration)
	// Visible is called when a client reports it has rendered a commit,
	// with the time from the commit to that report.
	Visible(collection string, took time.Duration)
}

type nopMetrics struct{}

func (nopMetrics) Committed(string, int, uint64, time.Duration) {}
func (nopMetrics) Visible(string, time.Duration)                {}

// Option configures a Hub.
type Option func(*options) error

type options struct {
	logger        *slog.Logger
	metrics       Metrics
	limits        Limits
	maxCollection int
	fanout        fanout.Options
	presence      presence.Options
	idem          idem.Options
}

// WithFanout configures live delivery to subscribers: how far one may fall
// behind before it gets a catch-up instead of its backlog, and more.
func WithFanout(fo fanout.Options) Option {
	return func(o *options) error {
		if fo.BufferBytes < 0 || fo.PageSize < 0 || fo.GapTimeout < 0 {
			return errors.New("viewsync: negative fanout option")
		}
		o.fanout = fo
		return nil
	}
}

// WithLogger sets the hub's logger. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return setNonNil(l, "logger", func(o *options) { o.logger = l })
}

// WithMetrics sets where the hub reports measurements.
func WithMetrics(m Metrics) Option {
	return setNonNil(m, "metrics", func(o *options) { o.metrics = m })
}

// setNonNil returns the option that calls set, refusing a nil v (named
// what in the error).
func setNonNil[T comparable](v T, what string, set func(*options)) Option {
	return func(o *options) error {
		var zero T
		if v == zero {
			return errors.New("viewsync: nil " + what)
		}
		set(o)
		return nil
	}
}

// WithLimits sets the write limits; zero fields keep their defaults.
func WithLimits(l Limits) Option {
	return func(o *options) error {
		if l.MaxOpsPerCommit < 0 || l.MaxIDBytes < 0 || l.MaxValueBytes < 0 || l.MaxValueDepth < 0 || l.MaxCommitBytes < 0 {
			return errors.New("viewsync: negative limit")
		}
		if l.MaxValueDepth > protocol.MaxValueDepth {
			return fmt.Errorf("viewsync: MaxValueDepth %d is over the most a value may nest, %d", l.MaxValueDepth, protocol.MaxValueDepth)
		}
		o.limits = l
		return nil
	}
}

// WithMaxCachedCollections bounds how many collections' heads the hub keeps
// in memory (default 65536); past it, idle entries are forgotten and
// reloaded from the store on next use.
func WithMaxCachedCollections(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return errors.New("viewsync: max cached collections must be positive")
		}
		o.maxCollection = n
		return nil
	}
}
