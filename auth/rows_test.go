package auth

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/filter"
)

// rowsJSON spells row rights for comparing them.
func rowsJSON(t testing.TB, rows []RowRight) string {
	t.Helper()
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRightsJSON(t *testing.T) {
	tests := []struct {
		claim     string
		read      []string
		readRows  string // as rowsJSON spells them
		write     []string
		writeRows string
		call      []string
		marshal   string // the JSON MarshalJSON writes
	}{
		{
			claim: `{"read":["products","orders.*"],"write":["products"],"call":["discount"]}`,
			read:  []string{"products", "orders.*"}, readRows: `null`, write: []string{"products"}, writeRows: `null`, call: []string{"discount"},
			marshal: `{"read":["products","orders.*"],"write":["products"],"call":["discount"]}`,
		},
		{
			claim:    `{"read":[{"collection":"orders","where":{"owner":"alice"}},"products"]}`,
			read:     []string{"products"},
			readRows: `[{"collection":"orders","where":{"owner":"alice"}}]`, writeRows: `null`,
			marshal: `{"read":["products",{"collection":"orders","where":{"owner":"alice"}}]}`,
		},
		{
			claim: `{"read":[{"where":{"b":1.0,"a":{"$in":[2,1]}},"collection":"orders.*"},{"collection":"notes","where":{}}],` +
				`"write":[{"collection":"orders.*","where":{"owner":"alice","status":{"$ne":"closed"}}}],"call":[]}`,
			readRows:  `[{"collection":"orders.*","where":{"a":{"$in":[1,2]},"b":1}},{"collection":"notes","where":{}}]`,
			writeRows: `[{"collection":"orders.*","where":{"owner":"alice","status":{"$ne":"closed"}}}]`,
			call:      []string{},
			marshal: `{"read":[{"collection":"orders.*","where":{"a":{"$in":[1,2]},"b":1}},{"collection":"notes","where":{}}],` +
				`"write":[{"collection":"orders.*","where":{"owner":"alice","status":{"$ne":"closed"}}}]}`,
		},
		{
			claim: ` { "read" : [ ] , "write" : [ "a" , { "collection" : "b" , "where" : { "$id" : "x" } } ] } `,
			read:  []string{}, readRows: `null`, write: []string{"a"}, writeRows: `[{"collection":"b","where":{"$id":"x"}}]`,
			marshal: `{"write":["a",{"collection":"b","where":{"$id":"x"}}]}`,
		},
		{claim: `{}`, readRows: `null`, writeRows: `null`, marshal: `{}`},
	}
	for _, tt := range tests {
		var r Rights
		if err := json.Unmarshal([]byte(tt.claim), &r); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.claim, err)
			continue
		}
		if err := r.Validate(); err != nil {
			t.Errorf("Unmarshal(%s).Validate(): %v", tt.claim, err)
		}
		if !reflect.DeepEqual(r.Read, tt.read) || !reflect.DeepEqual(r.Write, tt.write) || !reflect.DeepEqual(r.Call, tt.call) ||
			rowsJSON(t, r.ReadRows) != tt.readRows || rowsJSON(t, r.WriteRows) != tt.writeRows {
			t.Errorf("Unmarshal(%s) = read %q %s, write %q %s, call %q", tt.claim, r.Read, rowsJSON(t, r.ReadRows), r.Write, rowsJSON(t, r.WriteRows), r.Call)
		}
		b, err := json.Marshal(r)
		if err != nil || string(b) != tt.marshal {
			t.Errorf("Marshal(Unmarshal(%s)) = %s, %v; want %s", tt.claim, b, err, tt.marshal)
			continue
		}
		// Round trip: what MarshalJSON writes reads back to itself.
		var again Rights
		if err := json.Unmarshal(b, &again); err != nil || again.Validate() != nil {
			t.Errorf("Unmarshal(%s): %v, %v", b, err, again.Validate())
		}
		if b2, _ := json.Marshal(again); string(b2) != string(b) {
			t.Errorf("Marshal(Unmarshal(%s)) = %s", b, b2)
		}
	}
	// null leaves the rights as they are.
	r := Rights{Read: []string{"a"}}
	if err := r.UnmarshalJSON([]byte("null")); err != nil || !reflect.DeepEqual(r, Rights{Read: []string{"a"}}) {
		t.Errorf("UnmarshalJSON(null) = %+v, %v", r, err)
	}
	// Rights made in Go marshal too.
	r = Rights{Read: []string{"*"}, WriteRows: []RowRight{{Collection: "orders", Where: filter.MustParse(`{"owner":"bo"}`)}}}
	if b, err := json.Marshal(r); err != nil || string(b) != `{"read":["*"],"write":[{"collection":"orders","where":{"owner":"bo"}}]}` {
		t.Errorf("Marshal(%+v) = %s, %v", r, b, err)
	}
}

func TestRightsJSONInvalid(t *testing.T) {
	tests := []struct {
		claim string
		want  string // Validate's error; empty when UnmarshalJSON fails
	}{
		{`{"read":[{"collection":"orders","where":{"owner":"alice"},"extra":1}]}`,
			`read right 0 (a row right): unknown field "extra": a row right has the fields "collection" and "where" only`},
		{`{"read":["a",{"Collection":"orders","where":{}}]}`,
			`read right 1 (a row right): unknown field "Collection": a row right has the fields "collection" and "where" only`},
		{`{"write":[{"where":{"a":1}}]}`, `write right 0 (a row right): no "collection"`},
		{`{"write":[{"collection":"orders"}]}`, `write right 0 (a row right): no "where"; a right on the whole collection is a pattern string`},
		{`{"write":[{"collection":"orders","where":null}]}`, `write right 0 (a row right): "where" is null; a row right needs a filter`},
		{`{"read":[{"collection":"","where":{}}]}`, `read right 0 (a row right): collection "": a pattern has 1 to 128 characters`},
		{`{"read":[{"collection":"a b","where":{}}]}`, `read right 0 (a row right): collection "a b": character ' ' is not allowed (a-z, A-Z, 0-9, _ . - and the wildcard *)`},
		{`{"read":[{"collection":5,"where":{}}]}`, `read right 0 (a row right): "collection" is not a string`},
		{`{"read":[{"collection":"o","where":{"price":{"$regex":"x"}}}]}`, `read right 0 (a row right): where: filter: "price": unknown operator "$regex"`},
		{`{"read":[{"collection":"o","where":["a"]}]}`, `read right 0 (a row right): where: filter: not a JSON object`},
		{`{"read":[{"collection":"o","where":"owner = alice"}]}`, `read right 0 (a row right): where: filter: not a JSON object`},
		{`{"read":[{"collection":"o","collection":"p","where":{}}]}`, `read right 0 (a row right): repeated field "collection"`},
		{`{"read":[{"collection":"o","where":{"a":1,"a":2}}]}`, `read right 0 (a row right): where: filter: duplicate key "a"`},
		{`{"read":[{}]}`, `read right 0 (a row right): no "collection"`},
		{`{"read":[5]}`, `read right 0: want a pattern string or a row right {"collection": PATTERN, "where": FILTER}`},
		{`{"read":["a",null]}`, `read right 1: want a pattern string or a row right {"collection": PATTERN, "where": FILTER}`},
		{`{"write":[["a"]]}`, `write right 0: want a pattern string or a row right {"collection": PATTERN, "where": FILTER}`},
		{`{"read":["a b"]}`, `read right "a b": character ' ' is not allowed (a-z, A-Z, 0-9, _ . - and the wildcard *)`},
		// The first of several problems.
		{`{"read":[{"collection":"o"}],"write":[7]}`, `read right 0 (a row right): no "where"; a right on the whole collection is a pattern string`},
		// Not rights at all: the reading fails, as before row rights.
		{`{"read":"orders"}`, ``},
		{`{"call":[{"collection":"o","where":{}}]}`, ``},
		{`[]`, ``},
		{`"all"`, ``},
	}
	for _, tt := range tests {
		var r Rights
		err := json.Unmarshal([]byte(tt.claim), &r)
		if tt.want == "" {
			if err == nil {
				t.Errorf("Unmarshal(%s) = %+v, want an error", tt.claim, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.claim, err)
			continue
		}
		if err := r.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("Unmarshal(%s).Validate():\n got %v\nwant %s", tt.claim, err, tt.want)
		}
	}
	// Row rights made in Go are validated too.
	for _, tt := range []struct {
		r    Rights
		want string
	}{
		{Rights{ReadRows: []RowRight{{Collection: "orders"}}}, `read row right 0: no where filter; a right on the whole collection is a pattern`},
		{Rights{WriteRows: []RowRight{{Collection: "ok", Where: filter.MustParse(`{}`)}, {Collection: "no/slash", Where: filter.MustParse(`{}`)}}},
			`write row right 1: collection "no/slash": character '/' is not allowed (a-z, A-Z, 0-9, _ . - and the wildcard *)`},
	} {
		if err := tt.r.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("Validate(%+v):\n got %v\nwant %s", tt.r, err, tt.want)
		}
	}
	for _, b := range []string{`{"collection":"o","where":{}} x`, `{"collection":"o","where":{}`, `[]`, `{1:2}`} {
		var rr RowRight
		if err := rr.UnmarshalJSON([]byte(b)); err == nil {
			t.Errorf("RowRight.UnmarshalJSON(%s) = %+v, want an error", b, rr)
		}
	}
}

func TestRightsFilter(t *testing.T) {
	alice := RowRight{Collection: "orders.*", Where: filter.MustParse(`{"owner":"alice"}`)}
	public := RowRight{Collection: "orders.eu", Where: filter.MustParse(`{"public":true}`)}
	notes := RowRight{Collection: "notes", Where: filter.MustParse(`{"$id":{"$in":["n1","n2"]}}`)}
	all := RowRight{Collection: "docs", Where: filter.MustParse(`{}`)}
	broken := RowRight{Collection: "broken"} // no Where: Validate refuses it
	r := Rights{
		Read:      []string{"products", "orders.archive"},
		ReadRows:  []RowRight{alice, public, notes, all, broken},
		Write:     []string{"notes"},
		WriteRows: []RowRight{alice},
		Call:      []string{"discount"},
	}
	tests := []struct {
		a          Action
		name       string
		allows     bool
		want       string // the filter's Key; "nil" for none
		restricted bool
	}{
		{Read, "products", true, "nil", false},
		{Read, "orders.archive", true, "nil", false}, // a pattern wins over the row rights
		{Read, "orders.us", true, `{"owner":"alice"}`, true},
		{Read, "orders.eu", true, `{"$or":[{"owner":"alice"},{"public":true}]}`, true},
		{Read, "notes", true, `{"$id":{"$in":["n1","n2"]}}`, true},
		{Read, "docs", true, `{}`, true},
		{Read, "broken", true, `{"$id":{"$in":[]}}`, true}, // fails closed: no record
		{Read, "other", false, "nil", false},
		{Write, "notes", true, "nil", false},
		{Write, "orders.eu", true, `{"owner":"alice"}`, true},
		{Write, "products", false, "nil", false},
		{Call, "discount", true, "nil", false},
		{Call, "orders.eu", false, "nil", false},
	}
	for _, tt := range tests {
		if got := r.Allows(tt.a, tt.name); got != tt.allows {
			t.Errorf("Allows(%s, %q) = %v, want %v", tt.a, tt.name, got, tt.allows)
		}
		for _, get := range []func(Action, string) (*filter.Filter, bool){r.Filter, Principal{Rights: r}.Filter} {
			f, restricted := get(tt.a, tt.name)
			got := "nil"
			if f != nil {
				got = f.Key()
			}
			if got != tt.want || restricted != tt.restricted {
				t.Errorf("Filter(%s, %q) = %s, %v; want %s, %v", tt.a, tt.name, got, restricted, tt.want, tt.restricted)
			}
		}
	}
	// All and no rights: never restricted.
	for _, r := range []Rights{All, {}} {
		if f, restricted := r.Filter(Read, "orders"); f != nil || restricted {
			t.Errorf("%+v.Filter = %v, %v", r, f, restricted)
		}
	}
}

func TestVerifyRowRights(t *testing.T) {
	k := keys(t)
	v := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow})
	token := func(rights any) string {
		return sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "viewsync", rights))
	}
	p, err := v.Verify(token(map[string]any{
		"read": []any{"products", map[string]any{"collection": "orders.*", "where": map[string]any{"owner": "ana", "total": map[string]any{"$lt": 100}}}},
		"write": []any{map[string]any{"collection": "orders.eu", "where": map[string]any{"owner": "ana"}},
			map[string]any{"collection": "orders.eu", "where": map[string]any{"shared": true}}},
		"call": []string{"discount"},
	}))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !reflect.DeepEqual(p.Rights.Read, []string{"products"}) || p.Rights.Write != nil || !reflect.DeepEqual(p.Rights.Call, []string{"discount"}) {
		t.Errorf("patterns: %+v", p.Rights)
	}
	if got, want := rowsJSON(t, p.Rights.ReadRows), `[{"collection":"orders.*","where":{"owner":"ana","total":{"$lt":100}}}]`; got != want {
		t.Errorf("ReadRows = %s, want %s", got, want)
	}
	for _, tt := range []struct {
		a          Action
		name, want string
		restricted bool
	}{
		{Read, "products", "nil", false},
		{Read, "orders.us", `{"owner":"ana","total":{"$lt":100}}`, true},
		{Write, "orders.eu", `{"$or":[{"owner":"ana"},{"shared":true}]}`, true},
	} {
		if !p.Allows(tt.a, tt.name) {
			t.Errorf("Allows(%s, %q) = false", tt.a, tt.name)
		}
		f, restricted := p.Filter(tt.a, tt.name)
		if got := f.String(); f == nil && tt.want != "nil" || f != nil && got != tt.want || restricted != tt.restricted {
			t.Errorf("Filter(%s, %q) = %v, %v; want %s, %v", tt.a, tt.name, f, restricted, tt.want, tt.restricted)
		}
	}
	if p.Allows(Write, "orders.us") || p.Allows(Read, "notes") {
		t.Errorf("row rights allow too much: %+v", p.Rights)
	}

	const claimErr = "unauthorized: the token's viewsync claim: "
	bad := []struct {
		name   string
		token  string
		reason string
	}{
		{"unknown field", token(map[string]any{"read": []any{map[string]any{"collection": "o", "where": map[string]any{}, "owner": "ana"}}}),
			claimErr + `read right 0 (a row right): unknown field "owner": a row right has the fields "collection" and "where" only`},
		{"no where", token(map[string]any{"write": []any{"a", map[string]any{"collection": "o"}}}),
			claimErr + `write right 1 (a row right): no "where"; a right on the whole collection is a pattern string`},
		{"no collection", token(map[string]any{"read": []any{map[string]any{"where": map[string]any{}}}}),
			claimErr + `read right 0 (a row right): no "collection"`},
		{"bad collection", token(map[string]any{"read": []any{map[string]any{"collection": "a/b", "where": map[string]any{}}}}),
			claimErr + `read right 0 (a row right): collection "a/b": character '/' is not allowed (a-z, A-Z, 0-9, _ . - and the wildcard *)`},
		{"bad where", token(map[string]any{"read": []any{map[string]any{"collection": "o", "where": map[string]any{"a": map[string]any{"$where": "1"}}}}}),
			claimErr + `read right 0 (a row right): where: filter: "a": unknown operator "$where"`},
		{"where not an object", token(map[string]any{"read": []any{map[string]any{"collection": "o", "where": "a"}}}),
			claimErr + `read right 0 (a row right): where: filter: not a JSON object`},
		{"a number", token(map[string]any{"read": []any{1}}),
			claimErr + `read right 0: want a pattern string or a row right {"collection": PATTERN, "where": FILTER}`},
		{"an object among calls", token(map[string]any{"call": []any{map[string]any{"collection": "o", "where": map[string]any{}}}}),
			"unauthorized: malformed token"},
		{"a field spelt in another case", signRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`,
			`{"sub":"ana","exp":1800003600,"viewsync":{"read":[{"collection":"o","Where":{}}]}}`),
			claimErr + `read right 0 (a row right): unknown field "Where": a row right has the fields "collection" and "where" only`},
		{"a repeated field", signRaw(t, jwt.SigningMethodHS256, k.secret, `{"alg":"HS256"}`,
			`{"sub":"ana","exp":1800003600,"viewsync":{"read":[{"collection":"o","where":{},"where":{"a":1}}]}}`),
			"unauthorized: malformed token"},
	}
	for _, tt := range bad {
		p, err := v.Verify(tt.token)
		if err == nil {
			t.Errorf("%s: Verify accepted %+v", tt.name, p.Rights)
			continue
		}
		if !errors.Is(err, viewsync.ErrUnauthorized) || !strings.HasPrefix(err.Error(), tt.reason) {
			t.Errorf("%s: Verify:\n got %v\nwant %s", tt.name, err, tt.reason)
		}
	}
}
