package filter_test

import (
	"encoding/json"
	"fmt"

	"github.com/viewsync/viewsync/filter"
)

func ExampleParse() {
	f, err := filter.Parse([]byte(`{"price": {"$lt": 50.0}, "category": "lamp"}`), filter.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Key())
	fmt.Println(f.Match("p1", json.RawMessage(`{"category":"lamp","price":39}`)))
	fmt.Println(f.Match("p2", json.RawMessage(`{"category":"lamp","price":"39"}`)))

	_, err = filter.Parse([]byte(`{"price": {"$regex": "^4"}}`), filter.Limits{})
	fmt.Println(err)
	// Output:
	// {"category":"lamp","price":{"$lt":50}}
	// true
	// false
	// filter: "price": unknown operator "$regex"
}

func ExampleFilter_Equalities() {
	f, _ := filter.Parse([]byte(`{"owner.id": {"$in": ["u2", "u1"]}, "total": {"$gt": 10}}`), filter.Limits{})
	d := filter.NewDoc("o1", json.RawMessage(`{"owner":{"id":"u1"},"total":12}`))
	for _, e := range f.Equalities() {
		v, _ := d.At(e.Path)
		fmt.Println(e.Path, e.Values, v)
	}
	fmt.Println(f.MatchDoc(d))
	// Output:
	// owner.id ["u1" "u2"] "u1"
	// true
}

func ExampleOr() {
	alice, _ := filter.Parse([]byte(`{"owner": "alice"}`), filter.Limits{})
	public, _ := filter.Parse([]byte(`{"public": true}`), filter.Limits{})
	mine, _ := filter.Parse([]byte(`{"status": "open"}`), filter.Limits{})
	fmt.Println(filter.And(filter.Or(alice, public), mine))
	// Output:
	// {"$or":[{"owner":"alice"},{"public":true}],"status":"open"}
}
