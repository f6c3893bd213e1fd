package filter

import (
	"slices"
	"strings"
)

// Equality is a condition a filter puts on every record it matches: the
// value at Path (as Doc.At returns it) is one of Values. It lets an index
// of records by the values at a path find the only ones a filter may
// match.
type Equality struct {
	// Path is a dotted path, or "$id".
	Path string
	// Values are canonical encodings, as Doc.At returns them, sorted,
	// without repeats. None: the filter matches no record.
	Values []string
}

// Equalities returns the equalities the filter implies, one per path,
// sorted by path: the filter can match only records where, for each, d.At
// of its Path is one of its Values. They come from the conditions at the
// top of the filter (not inside an $or) that are an $eq or $in of
// scalars: strings, numbers, booleans and null. None when there are no
// such conditions (or f is nil).
func (f *Filter) Equalities() []Equality {
	if f == nil || len(f.eqs) == 0 {
		return nil
	}
	eqs := make([]Equality, len(f.eqs))
	for i, e := range f.eqs {
		eqs[i] = Equality{Path: e.Path, Values: slices.Clone(e.Values)}
	}
	return eqs
}

func equalities(a *and) []Equality {
	var eqs []Equality
	for _, c := range a.conds {
		var values []string
		switch {
		case c.op == opEq && c.val.kind.scalar():
			values = []string{c.val.canon}
		case c.op == opIn && !slices.ContainsFunc(c.set, func(v lit) bool { return !v.kind.scalar() }):
			values = slices.Clone(c.canons)
			if values == nil {
				values = []string{}
			}
		default:
			continue
		}
		i := slices.IndexFunc(eqs, func(e Equality) bool { return e.Path == c.path })
		if i < 0 {
			eqs = append(eqs, Equality{Path: c.path, Values: values})
			continue
		}
		eqs[i].Values = intersect(eqs[i].Values, values)
	}
	slices.SortFunc(eqs, func(x, y Equality) int { return strings.Compare(x.Path, y.Path) })
	return eqs
}

// intersect returns the strings in both sorted lists, sorted.
func intersect(x, y []string) []string {
	out := []string{}
	for len(x) > 0 && len(y) > 0 {
		switch c := strings.Compare(x[0], y[0]); {
		case c < 0:
			x = x[1:]
		case c > 0:
			y = y[1:]
		default:
			out = append(out, x[0])
			x, y = x[1:], y[1:]
		}
	}
	return out
}
