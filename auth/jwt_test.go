package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync"
)

// t0 is the verifiers' injected now.
var t0 = time.Unix(1_800_000_000, 0)

const (
	testAud = "viewsync-test"
	testIss = "https://issuer.example"
)

func fixedNow() time.Time { return t0 }

// claimsFor returns valid claims for sub at t0, expiring an hour later, with
// read rights on "products" and "orders.*"; kv overrides (nil deletes).
func claimsFor(sub string, kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": sub,
		"exp": t0.Add(time.Hour).Unix(),
		"iat": t0.Unix(),
		"aud": testAud,
		"iss": testIss,
		"viewsync": map[string]any{
			"read":  []string{"products", "orders.*"},
			"write": []string{"products"},
			"call":  []string{"discount"},
		},
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

var wantRights = Rights{Read: []string{"products", "orders.*"}, Write: []string{"products"}, Call: []string{"discount"}}

func newJWT(t testing.TB, o JWTOptions) *JWT {
	t.Helper()
	v, err := NewJWT(o)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return v
}

// mainVerifier checks HS256 tokens with k.secret and the public keys of
// every algorithm, with an audience and issuer, at t0.
func mainVerifier(t testing.TB, k *testKeys) *JWT {
	return newJWT(t, JWTOptions{Secret: k.secret, Keys: k.keySet(t), Audience: testAud, Issuer: testIss, Now: fixedNow})
}

func TestVerifyAccepts(t *testing.T) {
	k := keys(t)
	main := mainVerifier(t, k)
	hs := func(alg string) *JWT {
		return newJWT(t, JWTOptions{Secret: k.other, SecretAlgorithm: alg, Now: fixedNow})
	}
	single := newJWT(t, JWTOptions{Keys: mustParseJWKS(t, jwksDoc(t, edJWK("", "", k.ed.Public().(ed25519.PublicKey)))), Now: fixedNow})
	tests := []struct {
		name  string
		v     *JWT
		token string
	}{
		{"HS256", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("HS256"))},
		{"HS256 with a kid", main, sign(t, jwt.SigningMethodHS256, k.secret, "whatever", claimsFor("HS256 with a kid"))},
		{"HS256 alone", hs("HS256"), sign(t, jwt.SigningMethodHS256, k.other, "", claimsFor("HS256 alone"))},
		{"HS384", hs("HS384"), sign(t, jwt.SigningMethodHS384, k.other, "", claimsFor("HS384"))},
		{"HS512", hs("HS512"), sign(t, jwt.SigningMethodHS512, k.other, "", claimsFor("HS512"))},
		{"RS256", main, sign(t, jwt.SigningMethodRS256, k.rsa, kidRSA, claimsFor("RS256"))},
		{"PS256", main, sign(t, jwt.SigningMethodPS256, k.rsaPS, kidPS, claimsFor("PS256"))},
		{"ES256", main, sign(t, jwt.SigningMethodES256, k.p256, kidES256, claimsFor("ES256"))},
		{"ES384", main, sign(t, jwt.SigningMethodES384, k.p384, kidES384, claimsFor("ES384"))},
		{"ES512", main, sign(t, jwt.SigningMethodES512, k.p521, kidES512, claimsFor("ES512"))},
		{"EdDSA", main, sign(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claimsFor("EdDSA"))},
		{"EdDSA without kid, one key", single, sign(t, jwt.SigningMethodEdDSA, k.ed, "", claimsFor("EdDSA without kid, one key"))},
		{"audience among several", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("audience among several", "aud", []string{"other", testAud}))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.v.Verify(tt.token)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if p.Subject != tt.name {
				t.Errorf("Subject = %q, want %q", p.Subject, tt.name)
			}
			if !reflect.DeepEqual(p.Rights, wantRights) {
				t.Errorf("Rights = %+v, want %+v", p.Rights, wantRights)
			}
			if !p.Expires.Equal(t0.Add(time.Hour)) {
				t.Errorf("Expires = %v, want %v", p.Expires, t0.Add(time.Hour))
			}
			if p.Anonymous {
				t.Error("a token's principal is anonymous")
			}
			if !p.Allows(Read, "orders.eu") || p.Allows(Write, "orders.eu") || !p.Allows(Call, "discount") {
				t.Errorf("principal's rights do not work: %+v", p.Rights)
			}
		})
	}
}

func TestVerifyClaimShapes(t *testing.T) {
	k := keys(t)
	v := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow})
	// No viewsync claim: a principal with no rights at all.
	p, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "viewsync", nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Rights, Rights{}) || p.Allows(Read, "products") {
		t.Errorf("no viewsync claim gave rights %+v", p.Rights)
	}
	// No subject: accepted, with an empty Subject (rate limits then go
	// by address).
	p, err = v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("", "sub", nil)))
	if err != nil || p.Subject != "" || p.Anonymous {
		t.Errorf("token without sub: %+v, %v", p, err)
	}
	// Unknown claims are ignored; all rights can be granted.
	p, err = v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("root", "extra", 1, "viewsync", map[string]any{"read": []string{"*"}, "write": []string{"*"}, "call": []string{"*"}})))
	if err != nil || !reflect.DeepEqual(p.Rights, All) {
		t.Errorf("all rights: %+v, %v", p, err)
	}
	// No audience or issuer configured: those in the token are not checked.
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("x", "aud", "someone", "iss", "someone"))); err != nil {
		t.Errorf("aud and iss checked though not configured: %v", err)
	}
}

func mustParseJWKS(t testing.TB, b []byte) *KeySet {
	t.Helper()
	ks, err := ParseJWKS(b)
	if err != nil {
		t.Fatalf("ParseJWKS: %v", err)
	}
	return ks
}

func TestVerifyRefuses(t *testing.T) {
	k := keys(t)
	main := mainVerifier(t, k)
	// Only public keys: the RSA RS256 key.
	rsaOnly := newJWT(t, JWTOptions{Keys: mustParseJWKS(t, jwksDoc(t, rsaJWK(kidRSA, "RS256", &k.rsa.PublicKey))), Now: fixedNow})
	// Only public keys: the PS256 one.
	psOnly := newJWT(t, JWTOptions{Keys: mustParseJWKS(t, jwksDoc(t, rsaJWK(kidPS, "PS256", &k.rsaPS.PublicKey))), Now: fixedNow})
	hs256 := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow})

	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	pkcs1PEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})

	valid := sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "viewsync", map[string]any{"read": []string{"products"}}))
	parts := strings.Split(valid, ".")

	// The payload with more rights, the signature kept.
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	payload["viewsync"] = map[string]any{"read": []string{"*"}, "write": []string{"*"}}
	moreRights, _ := json.Marshal(payload)
	tamperedPayload := parts[0] + "." + b64(moreRights) + "." + parts[2]

	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + b64(sig)

	esValid := sign(t, jwt.SigningMethodES256, k.p256, kidES256, claimsFor("ana"))
	esParts := strings.Split(esValid, ".")
	esSig, _ := base64.RawURLEncoding.DecodeString(esParts[2])
	esSig[len(esSig)-1] ^= 0x80
	esTampered := esParts[0] + "." + esParts[1] + "." + b64(esSig)

	noneHeader := map[string]any{"alg": "none", "typ": "JWT"}
	good := claimsFor("ana")

	const (
		malformed      = "malformed token"
		badSig         = "bad token signature"
		algNotAllowed  = "token algorithm not allowed"
		expired        = "token expired"
		notYet         = "token not valid yet"
		audience       = "token not meant for this audience"
		issuer         = "token from another issuer"
		required       = "token lacks a required claim"
		requiredAudIss = "token lacks a required claim (exp, or the aud or iss configured)"
		noKey          = "no key for the token's kid"
		rightsClaim    = "the token's viewsync claim"
	)
	tests := []struct {
		name   string
		v      *JWT
		token  string
		reason string
	}{
		{"empty", main, "", malformed},
		{"one segment", main, "abc", malformed},
		{"two segments", main, "abc.def", malformed},
		{"four segments", main, valid + ".x", malformed},
		{"not base64 header", main, "!!!." + parts[1] + "." + parts[2], malformed},
		{"padded header", main, parts[0] + "=." + parts[1] + "." + parts[2], malformed},
		{"header not JSON", main, b64([]byte("{")) + "." + parts[1] + "." + parts[2], malformed},
		{"payload not JSON", main, parts[0] + "." + b64([]byte("[1,2")) + "." + parts[2], malformed},
		{"not base64 signature", main, parts[0] + "." + parts[1] + ".@@@", malformed},
		{"rights claim not an object", hs256, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "viewsync", "all")), malformed},
		{"expired", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "exp", t0.Add(-time.Second).Unix())), expired},
		{"expiring now", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "exp", t0.Unix())), expired},
		{"expired RS256", main, sign(t, jwt.SigningMethodRS256, k.rsa, kidRSA, claimsFor("ana", "exp", t0.Add(-time.Hour).Unix())), expired},
		{"not yet valid", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "nbf", t0.Add(time.Second).Unix())), notYet},
		{"wrong audience", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "aud", "other")), audience},
		{"wrong audiences", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "aud", []string{"a", "b"})), audience},
		{"missing audience", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "aud", nil)), requiredAudIss},
		{"wrong issuer", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "iss", "https://evil.example")), issuer},
		{"missing issuer", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "iss", nil)), requiredAudIss},
		{"missing exp", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "exp", nil)), required},
		{"missing exp, public key", main, sign(t, jwt.SigningMethodEdDSA, k.ed, kidEd, claimsFor("ana", "exp", nil)), required},
		{"alg none", main, unsigned(t, noneHeader, good, ""), algNotAllowed},
		{"alg none with a signature", main, unsigned(t, noneHeader, good, parts[2]), algNotAllowed},
		{"alg none with a kid", rsaOnly, unsigned(t, map[string]any{"alg": "none", "kid": kidRSA}, good, ""), algNotAllowed},
		{"alg None", main, unsigned(t, map[string]any{"alg": "None"}, good, ""), algNotAllowed},
		{"alg missing", main, unsigned(t, map[string]any{"typ": "JWT"}, good, parts[2]), algNotAllowed},
		{"alg not a string", main, unsigned(t, map[string]any{"alg": 256}, good, parts[2]), algNotAllowed},
		{"alg unknown", main, unsigned(t, map[string]any{"alg": "HS999"}, good, parts[2]), algNotAllowed},
		{"HS256 with the RSA key's PEM, only JWKS", rsaOnly, sign(t, jwt.SigningMethodHS256, pemBytes, "", good), algNotAllowed},
		{"HS256 with the RSA key's PEM and kid, only JWKS", rsaOnly, sign(t, jwt.SigningMethodHS256, pemBytes, kidRSA, good), algNotAllowed},
		{"HS256 with the RSA key's PKCS1 PEM, only JWKS", rsaOnly, sign(t, jwt.SigningMethodHS256, pkcs1PEM, "", good), algNotAllowed},
		{"HS256 with the RSA key's DER, only JWKS", rsaOnly, sign(t, jwt.SigningMethodHS256, der, "", good), algNotAllowed},
		{"HS256 with the RSA key's DER and kid, secret too", main, sign(t, jwt.SigningMethodHS256, der, kidRSA, good), badSig},
		{"HS384 when HS256 is pinned", hs256, sign(t, jwt.SigningMethodHS384, k.secret, "", good), algNotAllowed},
		{"HS512 when HS256 is pinned, with keys", main, sign(t, jwt.SigningMethodHS512, k.secret, "", good), algNotAllowed},
		{"RS256 with a PS256 key", psOnly, sign(t, jwt.SigningMethodRS256, k.rsaPS, kidPS, good), algNotAllowed},
		{"RS256 with a PS256 key, RS256 allowed elsewhere", main, sign(t, jwt.SigningMethodRS256, k.rsaPS, kidPS, good), algNotAllowed},
		{"PS256 with an RS256 key", main, sign(t, jwt.SigningMethodPS256, k.rsa, kidRSA, good), algNotAllowed},
		{"ES384 with a P-256 key id", main, sign(t, jwt.SigningMethodES384, k.p384, kidES256, good), algNotAllowed},
		{"RS256 when only a secret is set", hs256, sign(t, jwt.SigningMethodRS256, k.rsa, "", good), algNotAllowed},
		{"tampered payload", main, tamperedPayload, badSig},
		{"tampered signature", main, tamperedSig, badSig},
		{"tampered ES256 signature", main, esTampered, badSig},
		{"signature of another token", main, parts[0] + "." + esParts[1] + "." + parts[2], badSig},
		{"empty signature", main, parts[0] + "." + parts[1] + ".", badSig},
		{"wrong secret", main, sign(t, jwt.SigningMethodHS256, k.other, "", good), badSig},
		{"wrong RSA key", main, sign(t, jwt.SigningMethodRS256, k.rsaPS, kidRSA, good), badSig},
		{"wrong EC key", main, sign(t, jwt.SigningMethodES256, freshP256(t), kidES256, good), badSig},
		{"unknown kid", main, sign(t, jwt.SigningMethodRS256, k.rsa, "nobody", good), noKey},
		{"no kid with several keys", main, sign(t, jwt.SigningMethodRS256, k.rsa, "", good), noKey},
		{"bad rights pattern", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "viewsync", map[string]any{"read": []string{"orders/eu"}})), rightsClaim},
		{"empty rights pattern", main, sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", "viewsync", map[string]any{"call": []string{""}})), rightsClaim},
		{"oversized", main, valid + "." + strings.Repeat("a", MaxTokenBytes), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.v.Verify(tt.token)
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
			for _, secret := range [][]byte{k.secret, k.other} {
				if strings.Contains(err.Error(), string(secret)) || strings.Contains(err.Error(), b64(secret)) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
	// The untampered originals pass, so the refusals above are the
	// tampering's doing.
	for _, tok := range []string{valid, esValid} {
		if _, err := main.Verify(tok); err != nil {
			t.Errorf("untampered token refused: %v", err)
		}
	}
	if _, err := rsaOnly.Verify(sign(t, jwt.SigningMethodRS256, k.rsa, "", good)); err != nil {
		t.Errorf("RS256 refused by the RSA-only verifier: %v", err)
	}
	if _, err := psOnly.Verify(sign(t, jwt.SigningMethodPS256, k.rsaPS, "", good)); err != nil {
		t.Errorf("PS256 refused by the PS256-only verifier: %v", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	k := keys(t)
	now := t0
	clock := func() time.Time { return now }
	strict := newJWT(t, JWTOptions{Secret: k.secret, Now: clock})
	lenient := newJWT(t, JWTOptions{Secret: k.secret, Now: clock, Leeway: time.Minute})
	tok := func(kv ...any) string { return sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana", kv...)) }
	tests := []struct {
		name           string
		token          string
		strict, leeway string // "" accepted, else the reason
	}{
		{"valid", tok(), "", ""},
		{"expires in a second", tok("exp", t0.Add(time.Second).Unix()), "", ""},
		{"expires now", tok("exp", t0.Unix()), "token expired", ""},
		{"expired 30s ago", tok("exp", t0.Add(-30*time.Second).Unix()), "token expired", ""},
		{"expired 59s ago", tok("exp", t0.Add(-59*time.Second).Unix()), "token expired", ""},
		{"expired 60s ago", tok("exp", t0.Add(-60*time.Second).Unix()), "token expired", "token expired"},
		{"expired 2m ago", tok("exp", t0.Add(-2*time.Minute).Unix()), "token expired", "token expired"},
		{"valid from now", tok("nbf", t0.Unix()), "", ""},
		{"valid in 30s", tok("nbf", t0.Add(30*time.Second).Unix()), "token not valid yet", ""},
		{"valid in 60s", tok("nbf", t0.Add(60*time.Second).Unix()), "token not valid yet", ""},
		{"valid in 61s", tok("nbf", t0.Add(61*time.Second).Unix()), "token not valid yet", "token not valid yet"},
	}
	check := func(t *testing.T, v *JWT, token, want string) {
		t.Helper()
		_, err := v.Verify(token)
		switch {
		case want == "" && err != nil:
			t.Errorf("refused: %v", err)
		case want != "" && err == nil:
			t.Errorf("accepted, want %q", want)
		case want != "" && (!strings.Contains(err.Error(), want) || !errors.Is(err, viewsync.ErrUnauthorized)):
			t.Errorf("error %v, want %q wrapping ErrUnauthorized", err, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, strict, tt.token, tt.strict)
			check(t, lenient, tt.token, tt.leeway)
		})
	}
	// The clock is read on every verification.
	token := tok()
	now = t0.Add(59 * time.Minute)
	check(t, strict, token, "")
	now = t0.Add(time.Hour + 30*time.Second)
	check(t, strict, token, "token expired")
	check(t, lenient, token, "")
	now = t0.Add(-30 * time.Second)
	check(t, strict, tok("nbf", t0.Unix()), "token not valid yet")
	check(t, lenient, tok("nbf", t0.Unix()), "")

	// A principal expires when its token stops being accepted: exp plus
	// the leeway, so a stream admitted within the leeway is not ended at
	// once.
	now = t0
	exp := t0.Add(-30 * time.Second)
	p, err := lenient.Verify(tok("exp", exp.Unix()))
	if err != nil {
		t.Fatal(err)
	}
	if want := exp.Add(time.Minute); !p.Expires.Equal(want) {
		t.Errorf("lenient principal expires %v, want exp + leeway %v", p.Expires, want)
	}
	if p, _ := strict.Verify(tok("exp", t0.Add(time.Minute).Unix())); !p.Expires.Equal(t0.Add(time.Minute)) {
		t.Errorf("strict principal expires %v, want exp %v", p.Expires, t0.Add(time.Minute))
	}
}

func TestNewJWT(t *testing.T) {
	k := keys(t)
	ks := k.keySet(t)
	bad := []struct {
		name string
		o    JWTOptions
		want string
	}{
		{"no key", JWTOptions{}, "no key"},
		{"empty key set", JWTOptions{Keys: &KeySet{}}, "no key"},
		{"short secret", JWTOptions{Secret: make([]byte, 31)}, "31 bytes"},
		{"short secret with keys", JWTOptions{Secret: []byte("secret"), Keys: ks}, "6 bytes"},
		{"RSA secret algorithm", JWTOptions{Secret: k.secret, SecretAlgorithm: "RS256"}, `"RS256"`},
		{"lower-case secret algorithm", JWTOptions{Secret: k.secret, SecretAlgorithm: "hs256"}, `"hs256"`},
		{"none secret algorithm", JWTOptions{Secret: k.secret, SecretAlgorithm: "none"}, `"none"`},
	}
	for _, tt := range bad {
		v, err := NewJWT(tt.o)
		if err == nil {
			t.Errorf("%s: NewJWT = %v, nil; want an error", tt.name, v)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want it to mention %q", tt.name, err, tt.want)
		}
	}
	good := []JWTOptions{
		{Secret: make([]byte, 32)},
		{Secret: k.secret, SecretAlgorithm: "HS384"},
		{Secret: k.secret, SecretAlgorithm: "HS512"},
		{Keys: ks},
		{Secret: k.secret, Keys: ks, Audience: "a", Issuer: "i", Leeway: time.Second, Cookie: "-"},
	}
	for _, o := range good {
		if _, err := NewJWT(o); err != nil {
			t.Errorf("NewJWT(%+v): %v", o, err)
		}
	}
	// The secret algorithm defaults to HS256, and only it is accepted.
	v := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow})
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("a"))); err != nil {
		t.Errorf("default algorithm is not HS256: %v", err)
	}
	v = newJWT(t, JWTOptions{Secret: k.secret, SecretAlgorithm: "HS512", Now: fixedNow})
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("a"))); err == nil {
		t.Error("HS256 accepted with HS512 pinned")
	}
	// Without an injected clock the real time is used: a token that
	// expired at t0 (2027) is not expired at 2001, and one that
	// expired in 2001 is expired now.
	v = newJWT(t, JWTOptions{Secret: k.secret})
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("a", "exp", time.Unix(1e9, 0).Unix()))); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("token expired in 2001 accepted: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	k := keys(t)
	tok := sign(t, jwt.SigningMethodHS256, k.secret, "", claimsFor("ana"))
	req := func(mod func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/c/products", nil)
		mod(r)
		return r
	}
	byHeader := req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) })
	byQuery := httptest.NewRequest(http.MethodGet, "/v1/c/products?token="+tok, nil)
	byCookie := req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: DefaultCookie, Value: tok}) })
	byOwnCookie := req(func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "sess", Value: tok}) })
	none := req(func(*http.Request) {})
	badScheme := req(func(r *http.Request) { r.Header.Set("Authorization", "Basic "+tok) })
	badToken := req(func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok+"x") })

	def := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow})
	noCookie := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow, Cookie: "-"})
	ownCookie := newJWT(t, JWTOptions{Secret: k.secret, Now: fixedNow, Cookie: "sess"})
	tests := []struct {
		name string
		v    *JWT
		r    *http.Request
		want string // "" accepted, else in the error
	}{
		{"header", def, byHeader, ""},
		{"query", def, byQuery, ""},
		{"default cookie", def, byCookie, ""},
		{"cookie of another name", def, byOwnCookie, "a token is required"},
		{"cookies off", noCookie, byCookie, "a token is required"},
		{"cookies off, header", noCookie, byHeader, ""},
		{"own cookie", ownCookie, byOwnCookie, ""},
		{"own cookie, default refused", ownCookie, byCookie, "a token is required"},
		{"none", def, none, "a token is required"},
		{"other scheme", def, badScheme, "Bearer TOKEN"},
		{"bad signature", def, badToken, "bad token signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.v.Authenticate(tt.r)
			if tt.want == "" {
				if err != nil || p.Subject != "ana" {
					t.Fatalf("Authenticate = %+v, %v", p, err)
				}
				return
			}
			if err == nil || !errors.Is(err, viewsync.ErrUnauthorized) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Authenticate = %+v, %v; want an ErrUnauthorized mentioning %q", p, err, tt.want)
			}
		})
	}
	// JWT.Authenticate is a Func.
	var _ Func = def.Authenticate
}

// freshP256 returns a new P-256 key, unknown to every verifier.
func freshP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
