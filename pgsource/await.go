package pgsource

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/viewsync/viewsync"
)

var _ viewsync.Source = (*Source)(nil)

// Name returns the name the source is added to its hub under
// (Options.Name): what Call.Await and a call-proxy backend's "await" name.
func (s *Source) Name() string { return s.opts.Name }

// Collections returns the collections the source feeds, in the order of
// Options.Tables.
func (s *Source) Collections() []string {
	out := make([]string, len(s.tables))
	for i, t := range s.tables {
		out[i] = t.Collection
	}
	return out
}

// Await returns once the source has applied every transaction that
// committed at or before pos, an LSN as PostgreSQL prints it
// ("16/B374D848"): what pg_current_wal_lsn() returns after a writer's
// commit. Applied means durable in the store and published to clients;
// the position counts while a table is being loaded again only once the
// load is done. It implements viewsync.Source, for Call.Await: a call
// handler that wrote to PostgreSQL calls
//
//	var lsn string
//	err := db.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn) // after COMMIT
//	…
//	err = call.Await(ctx, "postgres", lsn)
//
// so that its answer includes its write. A pos that is not an LSN is an
// error matching viewsync.ErrBadPosition; Close makes it return an error
// matching viewsync.ErrClosed.
func (s *Source) Await(ctx context.Context, pos string) error {
	want, err := ParseLSN(pos)
	if err != nil {
		return fmt.Errorf("%w: %w", viewsync.ErrBadPosition, err)
	}
	for {
		s.waitMu.Lock()
		ch := s.waitCh
		s.waitMu.Unlock()
		if s.applied.Load() >= uint64(want) && !s.loading.Load() {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			return fmt.Errorf("pgsource: stopped before reaching %s: %w", want, viewsync.ErrClosed)
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// advance records that every transaction up to p is applied, and wakes
// Await.
func (s *Source) advance(p pglogrepl.LSN) {
	if uint64(p) <= s.applied.Load() {
		return
	}
	s.applied.Store(uint64(p))
	s.wake()
}

// setLoading records whether a table is being loaded, and wakes Await.
func (s *Source) setLoading(on bool) {
	s.loading.Store(on)
	if !on {
		s.wake()
	}
}

// wake wakes whoever waits in Await.
func (s *Source) wake() {
	s.waitMu.Lock()
	close(s.waitCh)
	s.waitCh = make(chan struct{})
	s.waitMu.Unlock()
}

// lsnText is an LSN as PostgreSQL prints it: two hexadecimal numbers of
// at most 32 bits each.
var lsnText = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

// ParseLSN parses an LSN as PostgreSQL prints it ("16/B374D848", what
// pg_current_wal_lsn()::text gives), strictly: two hexadecimal numbers of
// 1–8 digits each around a slash, nothing else.
func ParseLSN(s string) (pglogrepl.LSN, error) {
	if !lsnText.MatchString(s) {
		return 0, fmt.Errorf("%q is not an LSN (like 16/B374D848)", s)
	}
	hi, lo, _ := strings.Cut(s, "/")
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return pglogrepl.LSN(h<<32 | l), nil
}
