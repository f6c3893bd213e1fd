package auth

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
)

// signRaw returns the token of the header and claims given as JSON text,
// byte for byte, signed with method m and key.
func signRaw(t testing.TB, m jwt.SigningMethod, key any, header, claims string) string {
	t.Helper()
	input := b64([]byte(header)) + "." + b64([]byte(claims))
	sig, err := m.Sign(input, key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return input + "." + b64(sig)
}

// TestVerifyStrict: tokens whose header or claims are ambiguous — a key
// repeated at any depth, a claim spelled in another case, trailing data —
// or whose header has "crit" are refused, though correctly signed; the
// same tokens without the ambiguity are accepted.
func TestVerifyStrict(t *testing.T) {
	k := keys(t)
	v := mainVerifier(t, k)
	exp := t0.Add(time.Hour).Unix()
	past := t0.Add(-time.Hour).Unix()
	hs := `{"alg":"HS256","typ":"JWT"}`
	ed := `{"alg":"EdDSA","kid":"` + kidEd + `"}`
	// claims returns the claims of "ana" with the JSON members extra
	// after them.
	claims := func(extra string) string {
		return fmt.Sprintf(`{"sub":"ana","aud":%q,"iss":%q,"exp":%d%s}`, testAud, testIss, exp, extra)
	}
	rights := `,"viewsync":{"read":["products"]}`
	const (
		dup   = "duplicate field"
		cased = "names are case-sensitive"
		crit  = `"crit"`
	)
	tests := []struct {
		name           string
		header, claims string
		key            any // k.secret when nil (HS256), else k.ed (EdDSA)
		reason         string
	}{
		// Repeated claims: encoding/json would keep the last.
		{"exp twice, the last valid", hs, fmt.Sprintf(`{"sub":"ana","aud":%q,"iss":%q,"exp":%d,"exp":%d}`, testAud, testIss, past, exp), nil, `duplicate field "exp"`},
		{"exp twice, equal", hs, claims(fmt.Sprintf(`,"exp":%d`, exp)), nil, `duplicate field "exp"`},
		{"exp twice, escaped", hs, claims(fmt.Sprintf(`,"\u0065xp":%d`, exp)), nil, `duplicate field "exp"`},
		{"sub twice", hs, claims(`,"sub":"root"`), nil, `duplicate field "sub"`},
		{"aud twice, the last right", hs, fmt.Sprintf(`{"sub":"ana","aud":"other","aud":%q,"iss":%q,"exp":%d}`, testAud, testIss, exp), nil, `duplicate field "aud"`},
		{"viewsync twice", hs, claims(rights + `,"viewsync":{"read":["*"],"write":["*"]}`), nil, `duplicate field "viewsync"`},
		{"read twice in viewsync", hs, claims(`,"viewsync":{"read":["products"],"read":["*"]}`), nil, `field "viewsync": duplicate field "read"`},
		{"repeated key deep in a claim of our own", hs, claims(`,"ctx":{"roles":[{"a":1,"a":2}]}`), nil, dup},
		{"exp twice, EdDSA", ed, claims(fmt.Sprintf(`,"exp":%d`, exp)), k.ed, `duplicate field "exp"`},
		// Claims spelled in another case: encoding/json would read them.
		{"EXP after an expired exp", hs, fmt.Sprintf(`{"sub":"ana","aud":%q,"iss":%q,"exp":%d,"EXP":%d}`, testAud, testIss, past, exp), nil, cased},
		{"Viewsync", hs, claims(`,"Viewsync":{"read":["*"]}`), nil, cased},
		{"Sub", hs, fmt.Sprintf(`{"Sub":"ana","aud":%q,"iss":%q,"exp":%d}`, testAud, testIss, exp), nil, cased},
		{"sub with a long s", hs, claims(`,"\u017fub":"root"`), nil, cased},
		{"READ in viewsync", hs, claims(`,"viewsync":{"read":["products"],"READ":["*"]}`), nil, cased},
		// An unknown field in viewsync: a misspelt right grants nothing
		// silently.
		{"raed in viewsync", hs, claims(`,"viewsync":{"raed":["products"]}`), nil, `unknown field "raed"`},
		// Not one JSON object.
		{"trailing object after the claims", hs, claims(rights) + `{"viewsync":{"read":["*"]}}`, nil, "malformed token"},
		{"claims not UTF-8", hs, claims(`,"name":"caf` + "\xe9" + `"`), nil, "not valid UTF-8"},
		// Repeated header parameters.
		{"alg twice", `{"alg":"HS256","alg":"HS256"}`, claims(rights), nil, `header: duplicate field "alg"`},
		{"alg twice, none first", `{"alg":"none","alg":"HS256"}`, claims(rights), nil, `duplicate field "alg"`},
		{"kid twice", `{"alg":"EdDSA","kid":"other","kid":"` + kidEd + `"}`, claims(rights), k.ed, `duplicate field "kid"`},
		{"typ twice", `{"alg":"HS256","typ":"JWT","typ":"JWT"}`, claims(rights), nil, `duplicate field "typ"`},
		// crit: no extension is understood.
		{"crit b64", `{"alg":"HS256","crit":["b64"],"b64":true}`, claims(rights), nil, `"crit" names "b64"`},
		{"crit of a registered claim", `{"alg":"HS256","crit":["exp"],"exp":1}`, claims(rights), nil, crit},
		{"crit empty", `{"alg":"HS256","crit":[]}`, claims(rights), nil, `"crit" must be a non-empty array`},
		{"crit not an array", `{"alg":"HS256","crit":"b64"}`, claims(rights), nil, `"crit" must be a non-empty array`},
		{"crit of numbers", `{"alg":"HS256","crit":[1]}`, claims(rights), nil, `"crit" must be a non-empty array`},
		{"crit null", `{"alg":"HS256","crit":null}`, claims(rights), nil, `"crit" must be a non-empty array`},
		{"crit, EdDSA", `{"alg":"EdDSA","kid":"` + kidEd + `","crit":["x"],"x":1}`, claims(rights), k.ed, crit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tok string
			if tt.key == nil {
				tok = signRaw(t, jwt.SigningMethodHS256, k.secret, tt.header, tt.claims)
			} else {
				tok = signRaw(t, jwt.SigningMethodEdDSA, tt.key, tt.header, tt.claims)
			}
			p, err := v.Verify(tok)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", p)
			}
			if !errors.Is(err, viewsync.ErrUnauthorized) {
				t.Errorf("error %v does not wrap ErrUnauthorized", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q, want the reason %q", err, tt.reason)
			}
			if !reflect.DeepEqual(p, Principal{}) {
				t.Errorf("principal %+v returned with the error", p)
			}
		})
	}

	// What is not ambiguous passes: other header parameters, claims of
	// one's own in any case, the same keys in different objects.
	for _, tt := range []struct{ header, claims string }{
		{hs, claims(rights)},
		{`{"alg":"HS256","typ":"JWT","kid":"any","cty":"JWT","x5t":"abc"}`, claims(rights)},
		{ed, claims(rights)},
		{hs, claims(`,"Role":"admin","ROLE":"x","ctx":{"sub":"other","exp":1,"a":{"a":{"a":1}}},"list":[{"a":1},{"a":2}]` + rights)},
		{hs, " " + claims(rights) + "\n"},
	} {
		key, m := any(k.secret), jwt.SigningMethod(jwt.SigningMethodHS256)
		if tt.header == ed {
			key, m = k.ed, jwt.SigningMethodEdDSA
		}
		p, err := v.Verify(signRaw(t, m, key, tt.header, tt.claims))
		if err != nil || p.Subject != "ana" || !p.Expires.Equal(time.Unix(exp, 0)) {
			t.Errorf("header %s, claims %s: %+v, %v", tt.header, tt.claims, p, err)
		}
	}
}
