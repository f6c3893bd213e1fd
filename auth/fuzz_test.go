package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
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
