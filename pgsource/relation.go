package pgsource

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// column is a table's column as the stream or the snapshot describes it.
type column struct {
	name string
	typ  *pgType
}

// relation is a mapped table's shape: its columns in order, and where its
// primary key's columns are among them.
type relation struct {
	t    *table
	cols []column
	// key holds the indexes in cols of the primary key's columns, in the
	// key's order.
	key []int
}

// newRelation makes a relation of t from its columns' names and type OIDs.
func (ss *session) newRelation(ctx context.Context, t *table, names []string, oids []uint32) (*relation, error) {
	r := &relation{t: t, cols: make([]column, len(names))}
	for i, n := range names {
		typ, err := ss.typeOf(ctx, oids[i])
		if err != nil {
			return nil, err
		}
		r.cols[i] = column{name: n, typ: typ}
	}
	for _, k := range t.info.key {
		at := -1
		for i, c := range r.cols {
			if c.name == k {
				at = i
			}
		}
		if at < 0 {
			return nil, fmt.Errorf("table %s: primary key column %s is not among its columns", t, k)
		}
		r.key = append(r.key, at)
	}
	return r, nil
}

// typeOf returns what the source knows of a type, asking the catalog
// about the types that are not built in (enums, domains, arrays of
// them, composite types, extensions'), once per session.
func (ss *session) typeOf(ctx context.Context, oid uint32) (*pgType, error) {
	if t := builtinType(oid); t != nil {
		return t, nil
	}
	if t, ok := ss.types[oid]; ok {
		return t, nil
	}
	var typtype, category, delim string
	var elem, base uint32
	err := ss.conn.QueryRow(ctx, "SELECT typtype::text, typcategory::text, typelem, typbasetype, typdelim::text FROM pg_type WHERE oid = $1", oid).
		Scan(&typtype, &category, &elem, &base, &delim)
	if err == pgx.ErrNoRows {
		return typeString, nil
	}
	if err != nil {
		return nil, fmt.Errorf("type %d: %w", oid, err)
	}
	t := typeString
	switch {
	case typtype == "d" && base != 0:
		if t, err = ss.typeOf(ctx, base); err != nil {
			return nil, err
		}
	case category == "A" && elem != 0 && len(delim) == 1:
		e, err := ss.typeOf(ctx, elem)
		if err != nil {
			return nil, err
		}
		t = &pgType{kind: kindArray, elem: e, delim: delim[0]}
	}
	ss.types[oid] = t
	return t, nil
}

// cell is one column's value in a row: text, NULL, or unchanged (a TOAST
// value the stream does not send).
type cell struct {
	text      string
	null      bool
	unchanged bool
}

// id returns the record id of a row's cells.
func (r *relation) id(cells []cell) (string, error) {
	parts := make([]string, len(r.key))
	for i, k := range r.key {
		if k >= len(cells) || cells[k].null || cells[k].unchanged {
			return "", fmt.Errorf("table %s: row without its primary key column %s", r.t, r.cols[k].name)
		}
		parts[i] = cells[k].text
	}
	return EncodeKey(parts), nil
}

// value returns the row as a JSON object of its columns. An unchanged
// column takes its value in old (the record's value before); nil old, or
// one without the column, makes it null.
func (r *relation) value(cells []cell, old map[string][]byte) []byte {
	b := []byte{'{'}
	for i, c := range r.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, c.name)
		b = append(b, ':')
		switch {
		case i >= len(cells) || cells[i].null:
			b = append(b, "null"...)
		case cells[i].unchanged:
			if v, ok := old[c.name]; ok {
				b = append(b, v...)
			} else {
				b = append(b, "null"...)
			}
		default:
			b = appendValue(b, c.typ, cells[i].text)
		}
	}
	return append(b, '}')
}
