package pgsource_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/pgsource"
)

// TestTypeMapping: each type's JSON form, the same from the initial load
// and from the stream, and an unchanged TOAST column kept from the record
// on an update that does not touch it.
func TestTypeMapping(t *testing.T) {
	_, url := newDB(t)
	db := connect(t, url)
	exec1(t, db,
		"CREATE TYPE mood AS ENUM ('sad', 'happy')",
		"CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
		`CREATE TABLE t (
			id int PRIMARY KEY, b bool, i2 smallint, i8 bigint, big bigint, n numeric, nbig numeric, nnan numeric,
			f4 real, f8 double precision, finf double precision, tx text, vc varchar(10), u uuid,
			j json, jb jsonb, ts timestamp, tstz timestamptz, d date, tm time, iv interval,
			by bytea, ai int[], at text[], anull int[], a2 int[], am mood[], m mood, dom posint, nul text)`,
	)
	const row = `(%d, true, -3, 9007199254740992, 9007199254740993, 12.50, 12345678901234567890.5, 'NaN',
		1.5, 0.1, 'Infinity', 'héllo "q"', 'abc', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		'{"a": [1, 2]}', '{"b": {"c": null}}', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02', '2024-02-29', '13:14:15', '1 day 2 hours',
		'\x00ff10', '{1,2,3}', '{"a b","c,d",NULL,"NULL"}', NULL, '{{1,2},{3,4}}', '{sad,happy}', 'happy', 7, NULL)`
	exec1(t, db, "INSERT INTO t VALUES "+strings.ReplaceAll(row, "%d", "1"))
	n := newNode(t)
	startSource(t, n, url, "vs_types", "t")
	exec1(t, db, "INSERT INTO t VALUES "+strings.ReplaceAll(row, "%d", "2"))
	c, _ := n.hub.Collection("t")
	var rec2 viewsync.Record
	until(t, "the streamed row", func() error {
		var err error
		rec2, err = c.Get(context.Background(), "2")
		return err
	})
	rec1, err := c.Get(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":%d,"b":true,"i2":-3,"i8":9007199254740992,"big":"9007199254740993","n":12.50,"nbig":"12345678901234567890.5","nnan":"NaN",` +
		`"f4":1.5,"f8":0.1,"finf":"Infinity","tx":"héllo \"q\"","vc":"abc","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",` +
		`"j":{"a":[1,2]},"jb":{"b":{"c":null}},"ts":"2024-01-02T03:04:05.123456","tstz":"2024-01-02T01:04:05Z","d":"2024-02-29","tm":"13:14:15","iv":"P1DT2H",` +
		`"by":"AP8Q","ai":[1,2,3],"at":["a b","c,d",null,"NULL"],"anull":null,"a2":[[1,2],[3,4]],"am":["sad","happy"],"m":"happy","dom":7,"nul":null}`
	for i, r := range []viewsync.Record{rec1, rec2} {
		w := strings.Replace(want, "%d", string(rune('1'+i)), 1)
		if string(r.Value) != w {
			t.Errorf("record %s (from the %s):\n got %s\nwant %s", r.ID, []string{"snapshot", "stream"}[i], r.Value, w)
		}
	}

	// TOAST: a large, incompressible value, then an update of another
	// column: the stream leaves the large one out, the record keeps it.
	exec1(t, db, "CREATE TABLE docs (id text PRIMARY KEY, body text, n int)")
	raw := make([]byte, 16<<10)
	rand.Read(raw)
	body := hex.EncodeToString(raw)
	if _, err := db.Exec(context.Background(), "INSERT INTO docs VALUES ('a,b', $1, 1)", body); err != nil {
		t.Fatal(err)
	}
	n2 := newNode(t)
	startSource(t, n2, url, "vs_toast", "docs")
	exec1(t, db, "UPDATE docs SET n = 2")
	d, _ := n2.hub.Collection("docs")
	id := pgsource.EncodeKey([]string{"a,b"})
	until(t, "the update", func() error {
		r, err := d.Get(context.Background(), id)
		if err != nil {
			return err
		}
		var v struct {
			Body string `json:"body"`
			N    int    `json:"n"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return err
		}
		if v.N != 2 {
			return errors.New("not updated yet")
		}
		if v.Body != body {
			t.Fatalf("the unchanged TOAST column became %d bytes, want the %d it had", len(v.Body), len(body))
		}
		return nil
	})
	if id != "a%2Cb" {
		t.Fatalf("EncodeKey = %q", id)
	}

	// A composite key, in the key's order (not the columns'): inserted,
	// updated, its key changed, deleted.
	exec1(t, db, "CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (b, a))", "INSERT INTO pairs VALUES (1, 'x,y', 5)")
	n3 := newNode(t)
	startSource(t, n3, url, "vs_pairs", "pairs")
	p, _ := n3.hub.Collection("pairs")
	ids := func() []string {
		s, err := p.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range s.Records {
			out = append(out, r.ID+"="+string(r.Value))
		}
		return out
	}
	if got := strings.Join(ids(), " "); got != `x%2Cy,1={"a":1,"b":"x,y","v":5}` {
		t.Fatalf("loaded %s", got)
	}
	exec1(t, db, "INSERT INTO pairs VALUES (2, 'z', 6)", "UPDATE pairs SET a = 3 WHERE b = 'x,y'", "DELETE FROM pairs WHERE a = 2")
	until(t, "the composite keys' changes", func() error {
		if got := strings.Join(ids(), " "); got != `x%2Cy,3={"a":3,"b":"x,y","v":5}` {
			return errors.New(got)
		}
		return nil
	})
}
