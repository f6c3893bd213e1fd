package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseJWKSBad(t *testing.T) {
	k := keys(t)
	rsaKey := rsaJWK("r", "", &k.rsa.PublicKey)
	ecKey := ecJWK(t, "e", "", &k.p256.PublicKey)
	ec384 := ecJWK(t, "e384", "", &k.p384.PublicKey)
	edKey := edJWK("o", "", k.ed.Public().(ed25519.PublicKey))
	x, y := ecCoords(t, &k.p256.PublicKey)
	offCurve := bytes.Clone(y)
	offCurve[len(offCurve)-1] ^= 1
	edPub := []byte(k.ed.Public().(ed25519.PublicKey))
	n := k.rsa.PublicKey.N

	big2 := func(b *big.Int) string { return b64(b.Bytes()) }
	pow2 := func(e uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), e) }
	plus1 := func(b *big.Int) *big.Int { return new(big.Int).Add(b, big.NewInt(1)) }

	tests := []struct {
		name string
		doc  []byte
		want string // in the error
	}{
		{"empty", []byte(""), "not valid JSON"},
		{"not JSON", []byte("nope"), "not valid JSON"},
		{"truncated", []byte(`{"keys":[`), "not valid JSON"},
		{"array", []byte(`[]`), "not valid JSON"},
		{"keys an object", []byte(`{"keys":{}}`), "not valid JSON"},
		{"keys a string", []byte(`{"keys":"x"}`), "not valid JSON"},
		{"key a number", []byte(`{"keys":[1]}`), "not valid JSON"},
		{"kty a number", []byte(`{"keys":[{"kty":1}]}`), "not valid JSON"},
		{"null", []byte(`null`), `no "keys" array`},
		{"no keys", []byte(`{}`), `no "keys" array`},
		{"keys null", []byte(`{"keys":null}`), `no "keys" array`},
		{"misspelt keys", []byte(`{"key":[]}`), `no "keys" array`},
		{"empty keys", []byte(`{"keys":[]}`), "no signing key"},
		{"RSA private key", jwksDoc(t, rsaKey.with("d", b64(k.rsa.D.Bytes()))), "private key"},
		{"EC private key", jwksDoc(t, ecKey.with("d", b64(ecPrivateBytes(t, k.p256)))), "private key"},
		{"Ed25519 private key", jwksDoc(t, edKey.with("d", b64(k.ed.Seed()))), "private key"},
		{"oct key", jwksDoc(t, jwkJSON{"kty": "oct", "k": b64(k.secret), "alg": "HS256"}), "symmetric"},
		{"oct key with use sig", jwksDoc(t, jwkJSON{"kty": "oct", "k": b64(k.secret), "use": "sig"}), "symmetric"},
		{"RSA 1024 bits", jwksDoc(t, rsaKey.with("n", big2(new(big.Int).Rsh(n, 1024)))), "1024 bits"},
		{"RSA 2047 bits", jwksDoc(t, rsaKey.with("n", big2(new(big.Int).Rsh(n, 1)))), "2047 bits"},
		{"RSA n empty", jwksDoc(t, rsaKey.with("n", "")), "n: "},
		{"RSA n missing", jwksDoc(t, rsaKey.with("n", nil)), "n: "},
		{"RSA n padded", jwksDoc(t, rsaKey.with("n", big2(n)+"=")), "n: "},
		{"RSA n standard base64", jwksDoc(t, rsaKey.with("n", strings.NewReplacer("-", "+", "_", "/").Replace(big2(n))+"+/")), "n: "},
		{"RSA e missing", jwksDoc(t, rsaKey.with("e", nil)), "e: "},
		{"RSA e even", jwksDoc(t, rsaKey.with("e", "AQAA")), "exponent"}, // 65536
		{"RSA e 2", jwksDoc(t, rsaKey.with("e", "Ag")), "exponent"},
		{"RSA e 1", jwksDoc(t, rsaKey.with("e", "AQ")), "exponent"},
		{"RSA e 0", jwksDoc(t, rsaKey.with("e", "AA")), "exponent"},
		{"RSA e 2^31+1", jwksDoc(t, rsaKey.with("e", big2(plus1(pow2(31))))), "exponent"},
		{"RSA e 2^64+1", jwksDoc(t, rsaKey.with("e", big2(plus1(pow2(64))))), "exponent"},
		{"RSA e huge", jwksDoc(t, rsaKey.with("e", big2(plus1(pow2(4096))))), "exponent"},
		{"EC point not on the curve", jwksDoc(t, ecKey.with("y", b64(offCurve))), "bad EC point"},
		{"EC point at zero", jwksDoc(t, ecKey.with("x", b64(make([]byte, 32)), "y", b64(make([]byte, 32)))), "bad EC point"},
		{"EC x short", jwksDoc(t, ecKey.with("x", b64(x[1:]))), "x: 31 bytes, want 32"},
		{"EC x long", jwksDoc(t, ecKey.with("x", b64(append([]byte{0}, x...)))), "x: 33 bytes, want 32"},
		{"EC y short", jwksDoc(t, ecKey.with("y", b64(y[:31]))), "y: 31 bytes, want 32"},
		{"EC y missing", jwksDoc(t, ecKey.with("y", nil)), "y: 0 bytes"},
		{"EC x not base64", jwksDoc(t, ecKey.with("x", "***")), "x: not base64url"},
		{"P-256 coordinates on P-384", jwksDoc(t, ecKey.with("crv", "P-384")), "x: 32 bytes, want 48"},
		{"P-384 coordinates on P-256", jwksDoc(t, ec384.with("crv", "P-256")), "x: 48 bytes, want 32"},
		{"Ed25519 x short", jwksDoc(t, edKey.with("x", b64(edPub[:31]))), "x: 31 bytes, want 32"},
		{"Ed25519 x missing", jwksDoc(t, edKey.with("x", nil)), "x: 0 bytes"},
		{"RSA with ES256", jwksDoc(t, rsaKey.with("alg", "ES256")), `alg "ES256" does not go with an RSA key`},
		{"RSA with HS256", jwksDoc(t, rsaKey.with("alg", "HS256")), `alg "HS256"`},
		{"RSA with none", jwksDoc(t, rsaKey.with("alg", "none")), `alg "none"`},
		{"RSA with lower-case rs256", jwksDoc(t, rsaKey.with("alg", "rs256")), `alg "rs256"`},
		{"P-256 with ES384", jwksDoc(t, ecKey.with("alg", "ES384")), `alg "ES384" does not go with curve P-256`},
		{"P-384 with ES256", jwksDoc(t, ec384.with("alg", "ES256")), `alg "ES256" does not go with curve P-384`},
		{"EC with RS256", jwksDoc(t, ecKey.with("alg", "RS256")), `alg "RS256"`},
		{"Ed25519 with ES256", jwksDoc(t, edKey.with("alg", "ES256")), `alg "ES256" does not go with an Ed25519 key`},
		{"Ed25519 with alg Ed25519", jwksDoc(t, edKey.with("alg", "Ed25519")), `alg "Ed25519"`},
		{"duplicate kid", jwksDoc(t, rsaKey.with("kid", "a"), ecKey.with("kid", "a")), `kid "a" is used twice`},
		{"duplicate empty kid", jwksDoc(t, rsaKey.with("kid", nil), edKey.with("kid", nil)), `kid "" is used twice`},
		{"no kty", jwksDoc(t, rsaKey.with("kty", nil)), `unsupported key type ""`},
		{"kty DSA", jwksDoc(t, rsaKey.with("kty", "DSA")), `unsupported key type "DSA"`},
		{"kty lower case", jwksDoc(t, rsaKey.with("kty", "rsa")), `unsupported key type "rsa"`},
		{"EC secp256k1", jwksDoc(t, ecKey.with("crv", "secp256k1")), `unsupported curve "secp256k1"`},
		{"EC no crv", jwksDoc(t, ecKey.with("crv", nil)), `unsupported curve ""`},
		{"EC Ed25519 crv", jwksDoc(t, ecKey.with("crv", "Ed25519")), `unsupported curve "Ed25519"`},
		{"OKP X25519", jwksDoc(t, edKey.with("crv", "X25519")), `unsupported OKP curve "X25519"`},
		{"OKP Ed448", jwksDoc(t, edKey.with("crv", "Ed448")), `unsupported OKP curve "Ed448"`},
		{"all keys for encryption", jwksDoc(t, rsaKey.with("use", "enc"), ecKey.with("use", "enc")), "no signing key"},
		{"a bad key after a good one", jwksDoc(t, edKey, rsaKey.with("kty", "DSA")), "key 1"},
		{"over MaxJWKSBytes", append(jwksDoc(t, edKey), bytes.Repeat([]byte(" "), MaxJWKSBytes)...), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := ParseJWKS(tt.doc)
			if err == nil {
				t.Fatalf("ParseJWKS accepted it: %d keys", ks.Len())
			}
			if ks != nil {
				t.Errorf("key set %v returned with an error", ks)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseJWKSGood(t *testing.T) {
	k := keys(t)
	all := k.allJWKs(t)
	edPub := k.ed.Public().(ed25519.PublicKey)
	type want struct {
		kid, alg string
		key      crypto.PublicKey
	}
	tests := []struct {
		name string
		doc  []byte
		want []want
	}{
		{"every algorithm", jwksDoc(t, all...), []want{
			{kidRSA, "RS256", &k.rsa.PublicKey},
			{kidPS, "PS256", &k.rsaPS.PublicKey},
			{kidES256, "ES256", &k.p256.PublicKey},
			{kidES384, "ES384", &k.p384.PublicKey},
			{kidES512, "ES512", &k.p521.PublicKey},
			{kidEd, "EdDSA", edPub},
		}},
		{"default algorithms", jwksDoc(t,
			rsaJWK("r", "", &k.rsa.PublicKey),
			ecJWK(t, "e256", "", &k.p256.PublicKey),
			ecJWK(t, "e384", "", &k.p384.PublicKey),
			ecJWK(t, "e521", "", &k.p521.PublicKey),
			edJWK("o", "", edPub),
		), []want{
			{"r", "RS256", &k.rsa.PublicKey},
			{"e256", "ES256", &k.p256.PublicKey},
			{"e384", "ES384", &k.p384.PublicKey},
			{"e521", "ES512", &k.p521.PublicKey},
			{"o", "EdDSA", edPub},
		}},
		{"every RSA algorithm", jwksDoc(t,
			rsaJWK("a", "RS384", &k.rsa.PublicKey),
			rsaJWK("b", "RS512", &k.rsa.PublicKey),
			rsaJWK("c", "PS384", &k.rsa.PublicKey),
			rsaJWK("d", "PS512", &k.rsa.PublicKey),
		), []want{
			{"a", "RS384", &k.rsa.PublicKey},
			{"b", "RS512", &k.rsa.PublicKey},
			{"c", "PS384", &k.rsa.PublicKey},
			{"d", "PS512", &k.rsa.PublicKey},
		}},
		{"one key without kid", jwksDoc(t, edJWK("", "", edPub)), []want{{"", "EdDSA", edPub}}},
		{"use sig", jwksDoc(t, edJWK("o", "", edPub).with("use", "sig")), []want{{"o", "EdDSA", edPub}}},
		{"encryption keys skipped", jwksDoc(t,
			rsaJWK("enc-rsa", "RSA-OAEP", &k.rsa.PublicKey).with("use", "enc"),
			jwkJSON{"kty": "oct", "k": b64(k.secret), "use": "enc"},
			jwkJSON{"kty": "EC", "crv": "P-256", "use": "enc", "d": "AA"},
			edJWK("o", "", edPub).with("use", "sig"),
			ecJWK(t, "o", "", &k.p256.PublicKey).with("use", "enc"), // same kid: skipped before the check
		), []want{{"o", "EdDSA", edPub}}},
		{"other fields ignored", jwksDoc(t, rsaJWK("r", "RS256", &k.rsa.PublicKey).with("key_ops", []string{"verify"}, "x5c", []string{"MIIB"}, "ext", true)), []want{{"r", "RS256", &k.rsa.PublicKey}}},
		{"exponent 3", jwksDoc(t, rsaJWK("r", "", &k.rsa.PublicKey).with("e", "Aw")), []want{{"r", "RS256", &rsa.PublicKey{N: k.rsa.N, E: 3}}}},
		{"exponent 2^31-1", jwksDoc(t, rsaJWK("r", "", &k.rsa.PublicKey).with("e", b64(big.NewInt(1<<31-1).Bytes()))), []want{{"r", "RS256", &rsa.PublicKey{N: k.rsa.N, E: 1<<31 - 1}}}},
		{"exactly MaxJWKSBytes", func() []byte {
			d := jwksDoc(t, edJWK("o", "", edPub))
			return append(d, bytes.Repeat([]byte(" "), MaxJWKSBytes-len(d))...)
		}(), []want{{"o", "EdDSA", edPub}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := ParseJWKS(tt.doc)
			if err != nil {
				t.Fatalf("ParseJWKS: %v", err)
			}
			if ks.Len() != len(tt.want) {
				t.Fatalf("Len() = %d, want %d", ks.Len(), len(tt.want))
			}
			for i, w := range tt.want {
				got := ks.keys[i]
				if got.kid != w.kid || got.alg != w.alg {
					t.Errorf("key %d: kid %q alg %q, want kid %q alg %q", i, got.kid, got.alg, w.kid, w.alg)
				}
				eq, ok := got.key.(interface{ Equal(crypto.PublicKey) bool })
				if !ok || !eq.Equal(w.key) {
					t.Errorf("key %d (%T) is not the key of the document", i, got.key)
				}
			}
		})
	}
}

func TestKeySetLookup(t *testing.T) {
	k := keys(t)
	one := mustParseJWKS(t, jwksDoc(t, edJWK("", "", k.ed.Public().(ed25519.PublicKey))))
	if pk, err := one.lookup(""); err != nil || pk.alg != "EdDSA" {
		t.Errorf("lookup without kid in a one-key set: %+v, %v", pk, err)
	}
	if _, err := one.lookup("x"); !errors.Is(err, errNoKey) {
		t.Errorf("lookup of an unknown kid: %v", err)
	}
	many := k.keySet(t)
	if _, err := many.lookup(""); !errors.Is(err, errNoKey) || !strings.Contains(err.Error(), "6 keys") {
		t.Errorf("lookup without kid in a six-key set: %v", err)
	}
	for _, kid := range []string{kidRSA, kidPS, kidES256, kidES384, kidES512, kidEd} {
		if pk, err := many.lookup(kid); err != nil || pk.kid != kid {
			t.Errorf("lookup(%q) = %+v, %v", kid, pk, err)
		}
	}
	if _, err := many.lookup(strings.ToUpper(kidRSA)); err == nil {
		t.Error("kids match case-insensitively")
	}
}

func TestLoadJWKS(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, jwksDoc(t, k.allJWKs(t)...), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadJWKS(good)
	if err != nil || ks.Len() != 6 {
		t.Fatalf("LoadJWKS = %v, %v; want 6 keys", ks, err)
	}
	// It verifies tokens.
	v := newJWT(t, JWTOptions{Keys: ks, Now: fixedNow})
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, k.p256, kidES256, claimsFor("ana"))); err != nil {
		t.Errorf("a key from the file does not verify: %v", err)
	}

	missing := filepath.Join(dir, "nope.json")
	if _, err := LoadJWKS(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "read JWKS") {
		t.Errorf("LoadJWKS(missing) = %v, want a not-exist error", err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJWKS(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "symmetric") {
		t.Errorf("LoadJWKS(bad) = %v, want an error naming the file and the problem", err)
	}
	if _, err := LoadJWKS(dir); err == nil {
		t.Error("LoadJWKS(a directory) succeeded")
	}
}

func FuzzParseJWKS(f *testing.F) {
	// Fixed keys: the seeds are the same in every fuzz worker.
	fk := fuzzKeys(f)
	f.Add(jwksDoc(f, fk.jwks...))
	f.Add(jwksDoc(f, fk.jwks[0]))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA","use":"enc"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"sig","kid":"a"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ks, err := ParseJWKS(doc)
		if err != nil {
			if ks != nil {
				t.Fatalf("key set returned with error %v", err)
			}
			return
		}
		if ks.Len() == 0 {
			t.Fatal("ParseJWKS succeeded with no keys")
		}
		if len(doc) > MaxJWKSBytes {
			t.Fatalf("a document of %d bytes was accepted", len(doc))
		}
		kids := map[string]bool{}
		for _, k := range ks.keys {
			if kids[k.kid] {
				t.Fatalf("kid %q twice", k.kid)
			}
			kids[k.kid] = true
			switch key := k.key.(type) {
			case *rsa.PublicKey:
				if !strings.HasPrefix(k.alg, "RS") && !strings.HasPrefix(k.alg, "PS") {
					t.Fatalf("RSA key with alg %q", k.alg)
				}
				if key.N.BitLen() < 2048 || key.E < 3 || key.E%2 == 0 {
					t.Fatalf("weak RSA key accepted: %d bits, e=%d", key.N.BitLen(), key.E)
				}
			case *ecdsa.PublicKey:
				want := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key.Curve.Params().Name]
				if k.alg != want {
					t.Fatalf("EC key on %s with alg %q", key.Curve.Params().Name, k.alg)
				}
				if _, err := key.Bytes(); err != nil {
					t.Fatalf("invalid EC key accepted: %v", err)
				}
			case ed25519.PublicKey:
				if k.alg != "EdDSA" || len(key) != ed25519.PublicKeySize {
					t.Fatalf("Ed25519 key of %d bytes with alg %q", len(key), k.alg)
				}
			default:
				t.Fatalf("key of type %T accepted", k.key)
			}
		}
		// A set that parsed makes a verifier.
		if _, err := NewJWT(JWTOptions{Keys: ks}); err != nil {
			t.Fatalf("NewJWT with a parsed key set: %v", err)
		}
	})
}

// ecPrivateBytes is the private scalar of k, as a JWK's "d" holds it.
func ecPrivateBytes(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
