package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/metrics"
	"github.com/viewsync/viewsync/pgsource"
)

// pgConfig holds the flags of 'viewsync serve' that feed collections from
// PostgreSQL tables.
type pgConfig struct {
	url         string
	tables      tableList
	slot        string
	publication string
	awaitTO     time.Duration

	// fs is serve's flag set: whether --demo was given decides whether
	// the demo runs on PostgreSQL.
	fs *flag.FlagSet
	// demoDB is the demo's table once start readied it (demoOnPG); nil
	// otherwise.
	demoDB *demo.Postgres
}

func (c *pgConfig) register(fs *flag.FlagSet) {
	c.fs = fs
	fs.StringVar(&c.url, "pg-url", "", "PostgreSQL to feed collections from (postgres://user:password@host:5432/db): with --pg-table, each table becomes a live, read-only collection fed from logical replication (wal_level = logical, a role with REPLICATION; see docs/postgres.md)")
	fs.Var(&c.tables, "pg-table", "with --pg-url: a table to follow as schema.table[=collection] (the collection named after the table by default); repeat it, or separate several with commas")
	fs.StringVar(&c.slot, "pg-slot", pgsource.DefaultSlot, "with --pg-url: the persistent logical replication slot viewsync streams from (it keeps WAL while viewsync is down: drop it when removing viewsync)")
	fs.StringVar(&c.publication, "pg-publication", pgsource.DefaultPublication, "with --pg-url: the publication of the tables, created or extended when needed")
	fs.DurationVar(&c.awaitTO, "pg-await-timeout", viewsync.DefaultAwaitTimeout, "with --pg-url: time a call whose handler or --call-proxy backend wrote to PostgreSQL waits for the source to apply the LSN it returned (read-your-writes); past it the caller gets 504")
}

// demoOnPG reports whether the demo runs on PostgreSQL: --demo given
// (not only its default) with --pg-url.
func (c *pgConfig) demoOnPG() bool {
	if c.url == "" || !cliflag.Given(c.fs, "demo") {
		return false
	}
	g, ok := c.fs.Lookup("demo").Value.(flag.Getter)
	on, _ := g.Get().(bool)
	return ok && on
}

// demoTable is the mapping of the demo's table to its collection.
var demoTable = pgsource.Table{Schema: demo.TableSchema, Name: demo.TableName, Collection: demo.Collection}

func (c *pgConfig) validate(engine string) error {
	if c.demoOnPG() {
		// The demo's table joins the others, unless one feeds its
		// collection already: that must be the demo's table itself.
		mapped := false
		for _, t := range c.tables {
			if t.Collection == demo.Collection {
				if t.Schema != demoTable.Schema || t.Name != demoTable.Name {
					return fmt.Errorf("--demo with --pg-url runs the demo on the table %s, but --pg-table feeds collection %s from %s", demoTable, demo.Collection, t)
				}
				mapped = true
			}
		}
		if !mapped {
			c.tables = append(c.tables, demoTable)
		}
	}
	switch {
	case c.url == "" && len(c.tables) > 0:
		return errors.New("--pg-table needs --pg-url")
	case c.url != "" && len(c.tables) == 0:
		return errors.New("--pg-url needs at least one --pg-table (or --demo, to run the demo on a table products)")
	case c.awaitTO <= 0:
		return errors.New("--pg-await-timeout must be positive")
	case c.url != "" && engine != "bbolt":
		return fmt.Errorf("--pg-url needs --engine bbolt (the store keeps each collection's position in the PostgreSQL stream), not %s", engine)
	}
	return nil
}

// start starts the source when configured: nil without --pg-url.
func (c *pgConfig) start(ctx context.Context, hub *viewsync.Hub, met *metrics.Prometheus, log *slog.Logger) (*pgsource.Source, error) {
	if c.url == "" {
		return nil, nil
	}
	if c.demoOnPG() {
		db, err := demo.OpenPostgres(ctx, c.url, hub)
		if err != nil {
			return nil, err
		}
		// Its connection ends with serve.
		context.AfterFunc(ctx, db.Close)
		c.demoDB = db
		log.Info("demo: products kept in PostgreSQL; the page writes through calls", "table", demoTable.String())
	}
	src, err := pgsource.Start(ctx, hub, &pgsource.Options{
		URL:          c.url,
		Tables:       c.tables,
		Slot:         c.slot,
		Publication:  c.publication,
		Logger:       log,
		AwaitTimeout: c.awaitTO,
	})
	if err != nil {
		if c.demoDB != nil {
			c.demoDB.Close()
		}
		return nil, err
	}
	met.TrackSource("postgres", c.slot, func() metrics.SourceStats {
		s := src.Stats()
		return metrics.SourceStats{Connected: s.Connected, LagBytes: s.LagBytes, LagSeconds: s.LagSeconds,
			Transactions: s.Transactions, Skipped: s.Skipped, Reconnects: s.Reconnects, SnapshotRows: s.SnapshotRows}
	})
	names := make([]string, len(c.tables))
	for i, t := range c.tables {
		names[i] = t.String() + "=" + t.Collection
	}
	log.Info("collections fed from PostgreSQL", "url", redactURL(c.url), "tables", strings.Join(names, ","), "slot", c.slot, "publication", c.publication)
	return src, nil
}

// tableList is --pg-table: repeated, or comma-separated (as its
// environment variable VIEWSYNC_PG_TABLE holds several).
type tableList []pgsource.Table

func (l *tableList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, t := range *l {
		s[i] = t.String() + "=" + t.Collection
	}
	return strings.Join(s, ",")
}

func (l *tableList) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		t, err := pgsource.ParseTable(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		*l = append(*l, t)
	}
	return nil
}
