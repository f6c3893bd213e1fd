package pgsource

import (
	"encoding/json"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// position is what a collection's store keeps with each commit and drop
// the source makes (store.Positions), as JSON.
type position struct {
	// System is the PostgreSQL cluster's system identifier: a position of
	// another cluster is no position.
	System string `json:"system"`
	// OID is the table's relation OID: a re-created table has another.
	OID uint32 `json:"oid"`
	// LSN is the end of the last transaction the collection holds (or the
	// snapshot's consistent point): a transaction whose commit record
	// starts before it is already in the collection.
	LSN pglogrepl.LSN `json:"lsn"`
	// Loaded is false while the initial load is under way: a crash then
	// means loading again.
	Loaded bool `json:"loaded"`
	// Columns are the table's columns as the records have them (name
	// and type OID each): a stream describing others means the table
	// changed shape, and is loaded again.
	Columns []string `json:"columns"`
}

// encode returns p as stored.
func (p position) encode() []byte {
	b, _ := json.Marshal(struct {
		System  string   `json:"system"`
		OID     uint32   `json:"oid"`
		LSN     string   `json:"lsn"`
		Loaded  bool     `json:"loaded"`
		Columns []string `json:"columns"`
	}{p.System, p.OID, p.LSN.String(), p.Loaded, p.Columns})
	return b
}

// decodePosition reads a stored position; nil b is none (ok false).
func decodePosition(b []byte) (p position, ok bool, err error) {
	if b == nil {
		return position{}, false, nil
	}
	var raw struct {
		System  string   `json:"system"`
		OID     uint32   `json:"oid"`
		LSN     string   `json:"lsn"`
		Loaded  bool     `json:"loaded"`
		Columns []string `json:"columns"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return position{}, false, fmt.Errorf("stored position %q: %w", b, err)
	}
	lsn, err := pglogrepl.ParseLSN(raw.LSN)
	if err != nil {
		return position{}, false, fmt.Errorf("stored position %q: %w", b, err)
	}
	return position{System: raw.System, OID: raw.OID, LSN: lsn, Loaded: raw.Loaded, Columns: raw.Columns}, true, nil
}

// columnsOf returns the columns of a table's shape as a position keeps
// them.
func columnsOf(names []string, oids []uint32) []string {
	cols := make([]string, len(names))
	for i, n := range names {
		cols[i] = fmt.Sprintf("%s/%d", n, oids[i])
	}
	return cols
}
