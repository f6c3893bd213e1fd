package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// testKeys are the keys the tests sign with, generated once per test binary.
type testKeys struct {
	secret []byte // HMAC, 32 bytes
	other  []byte // another HMAC secret
	rsa    *rsa.PrivateKey
	rsaPS  *rsa.PrivateKey
	p256   *ecdsa.PrivateKey
	p384   *ecdsa.PrivateKey
	p521   *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
	keysErr  error
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		k := &testKeys{secret: make([]byte, 32), other: make([]byte, 64)}
		rand.Read(k.secret)
		rand.Read(k.other)
		if k.rsa, keysErr = rsa.GenerateKey(rand.Reader, 2048); keysErr != nil {
			return
		}
		if k.rsaPS, keysErr = rsa.GenerateKey(rand.Reader, 2048); keysErr != nil {
			return
		}
		if k.p256, keysErr = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); keysErr != nil {
			return
		}
		if k.p384, keysErr = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); keysErr != nil {
			return
		}
		if k.p521, keysErr = ecdsa.GenerateKey(elliptic.P521(), rand.Reader); keysErr != nil {
			return
		}
		if _, k.ed, keysErr = ed25519.GenerateKey(rand.Reader); keysErr != nil {
			return
		}
		keysVal = k
	})
	if keysErr != nil {
		t.Fatalf("generate keys: %v", keysErr)
	}
	return keysVal
}

// The kids of the test JWKS.
const (
	kidRSA   = "rsa-rs256"
	kidPS    = "rsa-ps256"
	kidES256 = "ec-p256"
	kidES384 = "ec-p384"
	kidES512 = "ec-p521"
	kidEd    = "ed25519"
)

// jwkJSON is one JWK as a JSON object, written field by field.
type jwkJSON map[string]any

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid, alg string, pub *rsa.PublicKey) jwkJSON {
	k := jwkJSON{"kty": "RSA", "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	if kid != "" {
		k["kid"] = kid
	}
	if alg != "" {
		k["alg"] = alg
	}
	return k
}

// ecCoords returns the fixed-length x and y of pub.
func ecCoords(t testing.TB, pub *ecdsa.PublicKey) (x, y []byte) {
	t.Helper()
	b, err := pub.Bytes() // 0x04 || x || y
	if err != nil {
		t.Fatal(err)
	}
	n := (len(b) - 1) / 2
	return b[1 : 1+n], b[1+n:]
}

func ecJWK(t testing.TB, kid, alg string, pub *ecdsa.PublicKey) jwkJSON {
	t.Helper()
	x, y := ecCoords(t, pub)
	k := jwkJSON{"kty": "EC", "crv": pub.Curve.Params().Name, "x": b64(x), "y": b64(y)}
	if kid != "" {
		k["kid"] = kid
	}
	if alg != "" {
		k["alg"] = alg
	}
	return k
}

func edJWK(kid, alg string, pub ed25519.PublicKey) jwkJSON {
	k := jwkJSON{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}
	if kid != "" {
		k["kid"] = kid
	}
	if alg != "" {
		k["alg"] = alg
	}
	return k
}

// with returns a copy of k with the given fields set (a nil value deletes).
func (k jwkJSON) with(kv ...any) jwkJSON {
	c := jwkJSON{}
	for f, v := range k {
		c[f] = v
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

func jwksDoc(t testing.TB, ks ...jwkJSON) []byte {
	t.Helper()
	if ks == nil {
		ks = []jwkJSON{}
	}
	b, err := json.Marshal(map[string]any{"keys": ks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allJWKs are the public keys of k, one per supported algorithm.
func (k *testKeys) allJWKs(t testing.TB) []jwkJSON {
	return []jwkJSON{
		rsaJWK(kidRSA, "RS256", &k.rsa.PublicKey),
		rsaJWK(kidPS, "PS256", &k.rsaPS.PublicKey),
		ecJWK(t, kidES256, "ES256", &k.p256.PublicKey),
		ecJWK(t, kidES384, "", &k.p384.PublicKey),
		ecJWK(t, kidES512, "ES512", &k.p521.PublicKey),
		edJWK(kidEd, "EdDSA", k.ed.Public().(ed25519.PublicKey)),
	}
}

func (k *testKeys) keySet(t testing.TB) *KeySet {
	t.Helper()
	ks, err := ParseJWKS(jwksDoc(t, k.allJWKs(t)...))
	if err != nil {
		t.Fatalf("ParseJWKS: %v", err)
	}
	return ks
}

// sign returns a token of claims c signed with method m and key; kid, when
// set, goes in the header.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// unsigned returns the token of header and claims with signature sig, each
// part encoded by hand.
func unsigned(t testing.TB, header, claims any, sig string) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return b64(h) + "." + b64(c) + "." + sig
}
