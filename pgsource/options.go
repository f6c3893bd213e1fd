package pgsource

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// Options configure a Source.
type Options struct {
	// URL is the PostgreSQL connection string (postgres://user:password@host:port/db?sslmode=…,
	// or key=value pairs). The role needs the REPLICATION attribute, SELECT
	// on the tables and, unless the publication exists with every table,
	// ownership of the tables (to create or extend the publication).
	URL string
	// Tables are the tables to follow, each into its collection. At
	// least one; a collection at most once.
	Tables []Table
	// Slot names the persistent logical replication slot. Default
	// DefaultSlot. One viewsync process per slot.
	Slot string
	// Publication names the publication the slot streams. Default
	// DefaultPublication. It is created with the tables when missing, and
	// a table missing from it is added.
	Publication string
	// Logger receives connections, reconnections, snapshots and failures.
	// Default: discard.
	Logger *slog.Logger
	// StatusInterval is how often the source confirms its durable position
	// to PostgreSQL (a standby status update) and checks that the tables
	// were not re-created. Default 10s.
	StatusInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before reconnecting after a
	// failure: it doubles from MinBackoff up to MaxBackoff. Defaults 500ms
	// and 30s.
	MinBackoff, MaxBackoff time.Duration
	// SnapshotBatch is how many rows one commit of the initial load holds.
	// Default 1000.
	SnapshotBatch int
	// Name is what the source is added to the hub as (Hub.AddSource), for
	// Call.Await and the "await" of a call-proxy backend's answer.
	// Default DefaultName.
	Name string
	// AwaitTimeout bounds how long a call waits for the source to apply
	// the LSN its handler returned (Call.Await); past it the call fails
	// with 504 timeout. Default viewsync.DefaultAwaitTimeout.
	AwaitTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultSlot           = "viewsync"
	DefaultPublication    = "viewsync"
	DefaultStatusInterval = 10 * time.Second
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultSnapshotBatch  = 1000
	DefaultName           = "postgres"
)

// Table is a PostgreSQL table and the collection it feeds.
type Table struct {
	// Schema and Name name the table (unquoted identifiers, as stored in
	// the catalog: lower case unless created quoted).
	Schema, Name string
	// Collection is the viewsync collection it feeds.
	Collection string
}

// String returns schema.name.
func (t Table) String() string { return t.Schema + "." + t.Name }

// ErrBadTable: a --pg-table value or Table that names no valid table or
// collection.
var ErrBadTable = errors.New("bad table mapping")

// identifier is what ParseTable accepts for a schema or table name: what
// PostgreSQL accepts unquoted, case kept (the catalog name).
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// ParseTable parses a table mapping as --pg-table takes it:
// "schema.table=collection", "schema.table" (the collection named after
// the table) or "table" (schema public). The names are those of the
// catalog (unquoted), the collection a valid collection name.
func ParseTable(s string) (Table, error) {
	spec, coll, hasColl := strings.Cut(s, "=")
	var t Table
	if schema, name, ok := strings.Cut(spec, "."); ok {
		t.Schema, t.Name = schema, name
	} else {
		t.Schema, t.Name = "public", spec
	}
	t.Collection = t.Name
	if hasColl {
		t.Collection = coll
	}
	if err := t.validate(); err != nil {
		return Table{}, fmt.Errorf("%q: %w", s, err)
	}
	return t, nil
}

// validate checks the names.
func (t Table) validate() error {
	if !identifier.MatchString(t.Schema) || !identifier.MatchString(t.Name) {
		return fmt.Errorf("%w: want [schema.]table[=collection], schema and table unquoted PostgreSQL identifiers", ErrBadTable)
	}
	if err := protocol.ValidateCollection(t.Collection); err != nil {
		return fmt.Errorf("%w: collection: %w", ErrBadTable, err)
	}
	return nil
}

// withDefaults checks o and returns it with its defaults set.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.URL == "" {
		return c, errors.New("pgsource: no connection URL")
	}
	if len(c.Tables) == 0 {
		return c, errors.New("pgsource: no tables")
	}
	seen := map[string]string{}
	seenTable := map[string]bool{}
	for _, t := range c.Tables {
		if err := t.validate(); err != nil {
			return c, fmt.Errorf("pgsource: table %s: %w", t, err)
		}
		if other, ok := seen[t.Collection]; ok {
			return c, fmt.Errorf("pgsource: %w: collection %s is fed from both %s and %s", ErrBadTable, t.Collection, other, t)
		}
		if seenTable[t.String()] {
			return c, fmt.Errorf("pgsource: %w: table %s given twice", ErrBadTable, t)
		}
		seen[t.Collection], seenTable[t.String()] = t.String(), true
	}
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	for what, name := range map[string]string{"slot": c.Slot, "publication": c.Publication} {
		if !slotName.MatchString(name) {
			return c, fmt.Errorf("pgsource: %s name %q: want 1–50 of a-z, 0-9 and _", what, name)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.SnapshotBatch <= 0 {
		c.SnapshotBatch = DefaultSnapshotBatch
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if err := protocol.ValidateCallName(c.Name); err != nil {
		return c, fmt.Errorf("pgsource: Name: %w", err)
	}
	if c.AwaitTimeout < 0 {
		return c, errors.New("pgsource: negative AwaitTimeout")
	}
	return c, nil
}

// slotName is what a replication slot's name may hold (and what this
// package asks of a publication's, so that neither needs quoting).
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,50}$`)
