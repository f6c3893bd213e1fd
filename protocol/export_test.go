package protocol

import "encoding/json"

// CompactValue checks v by the value rules (see Limits.CheckValue), with
// no bound on its size and MaxValueDepth on its nesting, and returns it
// without insignificant whitespace. It returns v itself when v is already
// compact.
func CompactValue(v json.RawMessage) (json.RawMessage, error) {
	return Limits{}.CheckValue(v)
}
