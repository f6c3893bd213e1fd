package pgsource

// kind is how a column's text form becomes JSON (see docs/postgres.md,
// "Type mapping").
type kind uint8

const (
	// kindString: the text form as a JSON string (text, varchar, uuid,
	// enums, intervals, time, money, types without a rule of their own).
	kindString kind = iota
	// kindBool: true or false.
	kindBool
	// kindNumber: integers and numeric, a JSON number when a double holds
	// it without loss, else a string (see appendNumber).
	kindNumber
	// kindFloat: real and double precision, a number; NaN and the
	// infinities as strings.
	kindFloat
	// kindJSON: json and jsonb, embedded.
	kindJSON
	// kindTimestamptz: RFC 3339 in UTC.
	kindTimestamptz
	// kindTimestamp: RFC 3339 without an offset.
	kindTimestamp
	// kindBytea: base64 (standard, padded).
	kindBytea
	// kindArray: a JSON array of its elements, mapped by their type.
	kindArray
)

// pgType is what the source knows of a PostgreSQL type.
type pgType struct {
	kind kind
	// elem is the element type of an array; delim its delimiter.
	elem  *pgType
	delim byte
}

// The built-in types by OID (pg_type.dat); others are looked up in the
// catalog (see session.typeOf).
var (
	typeString      = &pgType{kind: kindString}
	typeBool        = &pgType{kind: kindBool}
	typeNumber      = &pgType{kind: kindNumber}
	typeFloat       = &pgType{kind: kindFloat}
	typeJSON        = &pgType{kind: kindJSON}
	typeTimestamptz = &pgType{kind: kindTimestamptz}
	typeTimestamp   = &pgType{kind: kindTimestamp}
	typeBytea       = &pgType{kind: kindBytea}

	builtinTypes = map[uint32]*pgType{
		16: typeBool, 17: typeBytea, 18: typeString, 19: typeString, 20: typeNumber,
		21: typeNumber, 23: typeNumber, 25: typeString, 26: typeNumber, 114: typeJSON,
		700: typeFloat, 701: typeFloat, 1042: typeString, 1043: typeString,
		1082: typeString, 1083: typeString, 1114: typeTimestamp, 1184: typeTimestamptz,
		1186: typeString, 1266: typeString, 1700: typeNumber, 2950: typeString, 3802: typeJSON,
	}
	// builtinArrays maps array types to their element types.
	builtinArrays = map[uint32]uint32{
		1000: 16, 1001: 17, 1002: 18, 1003: 19, 1016: 20, 1005: 21, 1007: 23, 1009: 25,
		1028: 26, 199: 114, 1021: 700, 1022: 701, 1014: 1042, 1015: 1043, 1182: 1082,
		1183: 1083, 1115: 1114, 1185: 1184, 1187: 1186, 1270: 1266, 1231: 1700, 2951: 2950,
		3807: 3802,
	}
)

// builtinType returns a built-in type, or nil.
func builtinType(oid uint32) *pgType {
	if t, ok := builtinTypes[oid]; ok {
		return t
	}
	if e, ok := builtinArrays[oid]; ok {
		return &pgType{kind: kindArray, elem: builtinTypes[e], delim: ','}
	}
	return nil
}
