package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// benchRecord is a typical record: a dozen members, a nested object, an
// array.
var benchRecord = json.RawMessage(`{"id":"o-1042","status":"open","customer":{"id":"u-77","name":"Ana Lima","tier":"gold"},` +
	`"total":129.95,"currency":"EUR","items":[{"sku":"lamp-3","qty":2},{"sku":"bulb-e27","qty":4}],` +
	`"created":"2025-03-14T09:26:53Z","region":"eu-west","priority":3,"paid":true,"note":null}`)

var benchFilter = `{"status":{"$in":["open","pending"]},"customer.tier":"gold","total":{"$gte":100,"$lt":500},"region":{"$ne":"us-east"}}`

func BenchmarkNewDoc(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		NewDoc("o-1042", benchRecord)
	}
}

// BenchmarkUnmarshalAny is the alternative NewDoc is measured against:
// encoding/json into an any, numbers as json.Number.
func BenchmarkUnmarshalAny(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		var v any
		if err := unmarshalNumbers(benchRecord, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func unmarshalNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

func BenchmarkMatchDoc(b *testing.B) {
	f := mustParse(b, benchFilter)
	d := NewDoc("o-1042", benchRecord)
	if !f.MatchDoc(d) {
		b.Fatal("no match")
	}
	b.ReportAllocs()
	for b.Loop() {
		f.MatchDoc(d)
	}
}

// BenchmarkMatchDocMany matches one record against many filters, each on
// another value of a member, as a commit's records are matched against
// the views of many subscribers.
func BenchmarkMatchDocMany(b *testing.B) {
	const n = 1000
	fs := make([]*Filter, n)
	for i := range fs {
		fs[i] = mustParse(b, fmt.Sprintf(`{"customer.id":"u-%d","status":{"$ne":"closed"}}`, i))
	}
	d := NewDoc("o-1042", benchRecord)
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range fs {
			f.MatchDoc(d)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/filter")
}

func BenchmarkDocAt(b *testing.B) {
	d := NewDoc("o-1042", benchRecord)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := d.At("customer.tier"); !ok {
			b.Fatal("absent")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse([]byte(benchFilter), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
