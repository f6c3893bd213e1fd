package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/viewsync/viewsync/protocol"
)

// The JWT library decodes a token's header and claims with encoding/json,
// which keeps the last of repeated keys and matches struct fields without
// regard to case: a token saying "exp" twice, or both "exp" and "EXP",
// could mean one thing here and another to its issuer or to any other
// verifier. checkStrict reads both segments first and refuses what is
// ambiguous, and the header parameters this verifier cannot honour.

// checkStrict refuses a token whose header or claims repeat a key at any
// depth, whose claims (or viewsync claim's fields) spell a name Verify
// reads in another case, or whose header has a "crit" parameter: crit
// names extensions a recipient must understand or else refuse the token
// (RFC 7515, section 4.1.11), and this verifier understands none. A token
// that does not split into three segments, or whose header or claims are
// not base64url, is left to the parser to refuse. The error is the reason
// to give the client.
func checkStrict(token string) error {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil
	}
	c, _, ok := strings.Cut(rest, ".")
	if !ok {
		return nil
	}
	header, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return nil
	}
	claims, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil
	}
	params, err := strictObject(header)
	if err != nil {
		return fmt.Errorf("malformed token: header: %w", err)
	}
	if raw, ok := params["crit"]; ok {
		var crit []string
		if err := json.Unmarshal(raw, &crit); err != nil || len(crit) == 0 {
			return errors.New(`malformed token: header: "crit" must be a non-empty array of header parameter names`)
		}
		return fmt.Errorf(`token header: "crit" names %q, an extension this server does not process`, crit[0])
	}
	fields, err := strictObject(claims)
	if err != nil {
		return fmt.Errorf("malformed token: claims: %w", err)
	}
	// The claims Verify reads, and the fields of the viewsync claim,
	// spelled as they must be.
	if err := exactNames("claim", fields, "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "viewsync"); err != nil {
		return fmt.Errorf("malformed token: %w", err)
	}
	var rights map[string]json.RawMessage
	if json.Unmarshal(fields["viewsync"], &rights) == nil { // not an object: the parser refuses it
		if err := exactNames(`field of the claim "viewsync"`, rights, "read", "write", "call"); err != nil {
			return fmt.Errorf("malformed token: %w", err)
		}
		// An unknown field is most likely a misspelt right ("raed"): refuse
		// it rather than grant less than the issuer meant, silently.
		for _, key := range slices.Sorted(maps.Keys(rights)) {
			if key != "read" && key != "write" && key != "call" {
				return fmt.Errorf(`malformed token: the claim "viewsync" has an unknown field %q; its fields are read, write and call`, key)
			}
		}
	}
	return nil
}

// strictObject returns the fields of b, which must be one JSON object,
// repeating no key at any depth.
func strictObject(b []byte) (map[string]json.RawMessage, error) {
	if err := protocol.CheckObject(b); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	return fields, nil
}

// exactNames refuses a key of obj that matches one of names only when case
// is ignored, as encoding/json matches struct fields.
func exactNames(what string, obj map[string]json.RawMessage, names ...string) error {
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		for _, name := range names {
			if key != name && strings.EqualFold(key, name) {
				return fmt.Errorf("%s %q: names are case-sensitive; want %q", what, key, name)
			}
		}
	}
	return nil
}
