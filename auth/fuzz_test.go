package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/filter"
)

// fuzzKeySet holds keys derived from fixed seeds, so that every fuzz worker
// process has the same ones and the seed tokens verify in all of them.
type fuzzKeySet struct {
	secret []byte
	ed     ed25519.PrivateKey
	p256   *ecdsa.PrivateKey
	jwks   []jwkJSON
}

func fuzzKeys(t testing.TB) *fuzzKeySet {
	t.Helper()
	seed := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	p256, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed("viewsync fuzz p256"))
	if err != nil {
		t.Fatal(err)
	}
	k := &fuzzKeySet{
		secret: seed("viewsync fuzz hmac"),
		ed:     ed25519.NewKeyFromSeed(seed("viewsync fuzz ed25519")),
		p256:   p256,
	}
	k.jwks = []jwkJSON{
		edJWK("fz-ed", "", k.ed.Public().(ed25519.PublicKey)),
		ecJWK(t, "fz-ec", "ES256", &p256.PublicKey),
	}
	return k
}

// FuzzVerify feeds arbitrary strings to a verifier with an HMAC secret and a
// JWKS. It must never panic, every refusal must wrap ErrUnauthorized, and
// the only tokens it may accept are the validly signed seeds: an accepted
// token must carry a seed's exact header and payload.
func FuzzVerify(f *testing.F) {
	fk := fuzzKeys(f)
	now := time.Unix(1_800_000_000, 0)
	v, err := NewJWT(JWTOptions{
		Secret:   fk.secret,
		Keys:     mustParseJWKS(f, jwksDoc(f, fk.jwks...)),
		Audience: "fuzz",
		Issuer:   "fuzz-issuer",
		Now:      func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	claims := func(sub string, kv ...any) jwt.MapClaims {
		c := jwt.MapClaims{
			"sub": sub, "aud": "fuzz", "iss": "fuzz-issuer",
			"exp":      now.Add(time.Hour).Unix(),
			"viewsync": map[string]any{"read": []string{"orders.*"}, "write": []string{"orders.eu"}},
		}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	wantRights := Rights{Read: []string{"orders.*"}, Write: []string{"orders.eu"}}

	// The tokens that verify, by subject.
	valid := map[string]string{
		"seed-hs": sign(f, jwt.SigningMethodHS256, fk.secret, "", claims("seed-hs")),
		"seed-ed": sign(f, jwt.SigningMethodEdDSA, fk.ed, "fz-ed", claims("seed-ed")),
		"seed-es": sign(f, jwt.SigningMethodES256, fk.p256, "fz-ec", claims("seed-es")),
	}
	for sub, tok := range valid {
		if p, err := v.Verify(tok); err != nil || p.Subject != sub {
			f.Fatalf("seed %s does not verify: %+v, %v", sub, p, err)
		}
		f.Add(tok)
	}
	// Tokens that must not verify.
	hs := valid["seed-hs"]
	parts := strings.Split(hs, ".")
	invalid := []string{
		"",
		"a.b.c",
		sign(f, jwt.SigningMethodHS256, fk.secret, "", claims("expired", "exp", now.Add(-time.Minute).Unix())),
		sign(f, jwt.SigningMethodHS256, fk.secret, "", claims("early", "nbf", now.Add(time.Minute).Unix())),
		sign(f, jwt.SigningMethodHS256, fk.secret, "", claims("other-aud", "aud", "other")),
		sign(f, jwt.SigningMethodHS256, fk.secret, "", claims("bad-rights", "viewsync", map[string]any{"read": []string{"a b"}})),
		sign(f, jwt.SigningMethodHS384, fk.secret, "", claims("hs384")),
		sign(f, jwt.SigningMethodEdDSA, fk.ed, "fz-ec", claims("wrong-kid")),
		sign(f, jwt.SigningMethodEdDSA, fk.ed, "", claims("no-kid")),
		sign(f, jwt.SigningMethodHS256, jwksDoc(f, fk.jwks...), "fz-ed", claims("confused")),
		unsigned(f, map[string]any{"alg": "none"}, claims("none"), ""),
		parts[0] + "." + b64([]byte(`{"sub":"seed-hs","exp":99999999999,"aud":"fuzz","iss":"fuzz-issuer","viewsync":{"read":["*"]}}`)) + "." + parts[2],
		// Correctly signed, but ambiguous or with an extension to honour.
		signRaw(f, jwt.SigningMethodHS256, fk.secret, `{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"seed-hs","aud":"fuzz","iss":"fuzz-issuer","exp":1,"exp":%d}`, now.Add(time.Hour).Unix())),
		signRaw(f, jwt.SigningMethodHS256, fk.secret, `{"alg":"none","alg":"HS256"}`, fmt.Sprintf(`{"sub":"seed-hs","aud":"fuzz","iss":"fuzz-issuer","exp":%d}`, now.Add(time.Hour).Unix())),
		signRaw(f, jwt.SigningMethodHS256, fk.secret, `{"alg":"HS256","crit":["b64"],"b64":false}`, fmt.Sprintf(`{"sub":"seed-hs","aud":"fuzz","iss":"fuzz-issuer","exp":%d}`, now.Add(time.Hour).Unix())),
	}
	for _, tok := range invalid {
		if _, err := v.Verify(tok); err == nil {
			f.Fatalf("invalid seed %q verifies", tok)
		}
		f.Add(tok)
	}

	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(token)
		if err != nil {
			if !errors.Is(err, viewsync.ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			if !reflect.DeepEqual(p, Principal{}) {
				t.Fatalf("principal %+v returned with error %v", p, err)
			}
			return
		}
		seed, ok := valid[p.Subject]
		if !ok {
			t.Fatalf("token %q accepted with subject %q, not a seed's", token, p.Subject)
		}
		// The signature covers the header and payload: those must be
		// the seed's, byte for byte.
		i, j := strings.LastIndexByte(token, '.'), strings.LastIndexByte(seed, '.')
		if i < 0 || token[:i] != seed[:j] {
			t.Fatalf("token %q accepted as %s, but it is not that seed's header and payload", token, p.Subject)
		}
		if !reflect.DeepEqual(p.Rights, wantRights) || !p.Expires.Equal(now.Add(time.Hour)) || p.Anonymous {
			t.Fatalf("seed %s verified as %+v", p.Subject, p)
		}
	})
}

// FuzzVerifyStrict signs arbitrary headers and claims with the secret, so
// that only the reading of the JSON can refuse them. It must never panic,
// and a token it accepts must be unambiguous: no key repeated at any depth
// of the header or claims (by a reference check on encoding/json's
// tokenizer), no "crit" header, the claims it reads spelled exactly, and
// its principal's subject the one encoding/json reads.
func FuzzVerifyStrict(f *testing.F) {
	fk := fuzzKeys(f)
	now := time.Unix(1_800_000_000, 0)
	v, err := NewJWT(JWTOptions{Secret: fk.secret, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	exp := now.Add(time.Hour).Unix()
	for _, seed := range [][2]string{
		{`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":["*"]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":1,"exp":%d}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"EXP":1}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":[],"read":["*"]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":[],"READ":["*"]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"x":[{"a":1,"a":2}]}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d}{"sub":"root"}`, exp)},
		{`{"alg":"HS256","alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d}`, exp)},
		{`{"alg":"HS256","crit":["b64"],"b64":false}`, fmt.Sprintf(`{"sub":"ana","exp":%d}`, exp)},
		{`{"alg":"HS256","crit":[]}`, fmt.Sprintf(`{"sub":"ana","exp":%d}`, exp)},
		// Row rights, valid and not.
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":["a",{"collection":"o.*","where":{"owner":"ana","n":{"$lt":5}}}],"write":[{"collection":"o","where":{"$or":[{"a":1},{"b":{"$in":[1,2]}}]}}]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":[{"collection":"o","where":{},"x":1}]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":[{"collection":"o","Where":{}}]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"write":[{"collection":"o","where":{"a":{"$regex":"x"}}}]}}`, exp)},
		{`{"alg":"HS256"}`, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"write":[{"collection":"o"}],"call":[{"collection":"o","where":{}}]}}`, exp)},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, header, claims string) {
		p, err := v.Verify(signRaw(t, jwt.SigningMethodHS256, fk.secret, header, claims))
		if err != nil {
			if !errors.Is(err, viewsync.ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
			return
		}
		for _, seg := range []string{header, claims} {
			if refRepeats([]byte(seg)) {
				t.Fatalf("accepted %q, which repeats a key", seg)
			}
		}
		var h, c map[string]json.RawMessage
		if json.Unmarshal([]byte(header), &h) != nil || json.Unmarshal([]byte(claims), &c) != nil {
			t.Fatalf("accepted header %q and claims %q, not both JSON objects", header, claims)
		}
		if _, ok := h["crit"]; ok {
			t.Fatalf("accepted the header %q, with crit", header)
		}
		for key := range c {
			for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "viewsync"} {
				if key != name && strings.EqualFold(key, name) {
					t.Fatalf("accepted the claim %q for %q", key, name)
				}
			}
		}
		var rights map[string]json.RawMessage
		json.Unmarshal(c["viewsync"], &rights)
		for key := range rights {
			for _, name := range []string{"read", "write", "call"} {
				if key != name && strings.EqualFold(key, name) {
					t.Fatalf("accepted the viewsync field %q for %q", key, name)
				}
			}
		}
		var sub string
		json.Unmarshal(c["sub"], &sub)
		if p.Subject != sub {
			t.Fatalf("subject %q, but the claims say %q", p.Subject, sub)
		}
		// The rights are valid, every row right has its filter, and they
		// read back from their JSON as they are.
		if err := p.Rights.Validate(); err != nil {
			t.Fatalf("accepted rights %+v that do not validate: %v", p.Rights, err)
		}
		for _, rr := range slices.Concat(p.Rights.ReadRows, p.Rights.WriteRows) {
			if rr.Where == nil {
				t.Fatalf("accepted a row right without a filter: %+v", p.Rights)
			}
		}
		b, err := json.Marshal(p.Rights)
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", p.Rights, err)
		}
		var again Rights
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("the rights %s do not read back: %v", b, err)
		}
		if err := again.Validate(); err != nil {
			// A filter's canonical spelling can be longer (1e20 is
			// 100000000000000000000) or nest deeper (an $and of two
			// $or) than the one read, and so pass a limit.
			if errors.Is(err, filter.ErrInvalid) && (strings.Contains(err.Error(), "more than") || strings.Contains(err.Error(), "nested deeper")) {
				return
			}
			t.Fatalf("the rights %s do not read back: %v", b, err)
		}
		if b2, _ := json.Marshal(again); !bytes.Equal(b, b2) {
			t.Fatalf("the rights %s read back as %s", b, b2)
		}
	})
}

// refRepeats reports whether the JSON text b has an object that repeats a
// key, reading it with encoding/json's tokenizer: a check independent of
// the one Verify makes. Text that is not JSON repeats nothing.
func refRepeats(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() (bool, error)
	walk = func() (bool, error) {
		tok, err := dec.Token()
		if err != nil {
			return false, err
		}
		repeats := false
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return false, err
				}
				key, _ := k.(string)
				repeats = repeats || seen[key]
				seen[key] = true
				r, err := walk()
				if err != nil {
					return false, err
				}
				repeats = repeats || r
			}
			_, err = dec.Token()
		case json.Delim('['):
			for dec.More() {
				r, err := walk()
				if err != nil {
					return false, err
				}
				repeats = repeats || r
			}
			_, err = dec.Token()
		}
		return repeats, err
	}
	repeats, err := walk()
	return err == nil && repeats
}
