package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// KeySet holds the public keys tokens may be signed with, each with the
// one algorithm it verifies.
type KeySet struct {
	keys []publicKey
}

type publicKey struct {
	kid string
	alg string
	key any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// Len returns the number of keys.
func (s *KeySet) Len() int { return len(s.keys) }

// MaxJWKSBytes bounds a JWKS document.
const MaxJWKSBytes = 1 << 20

// LoadJWKS reads a JWKS file (see ParseJWKS).
func LoadJWKS(path string) (*KeySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read JWKS: %w", err)
	}
	ks, err := ParseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return ks, nil
}

// jwk is one JSON Web Key (RFC 7517/7518/8037) as far as viewsync reads it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

// ParseJWKS parses a JSON Web Key Set ({"keys":[…]}) of public signing
// keys: RSA (RS256/384/512, PS256/384/512; RS256 when "alg" is absent; at
// least 2048 bits), EC (ES256 on P-256, ES384 on P-384, ES512 on P-521) and
// OKP Ed25519 (EdDSA). Keys with "use" other than "sig" are skipped;
// symmetric and private keys are refused, as are two keys with one kid.
func ParseJWKS(data []byte) (*KeySet, error) {
	if len(data) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", MaxJWKSBytes)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS has no "keys" array`)
	}
	ks := &KeySet{}
	seen := map[string]bool{}
	for i, k := range doc.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pk, err := k.parse()
		if err != nil {
			return nil, fmt.Errorf("key %d (kid %q): %w", i, k.Kid, err)
		}
		if seen[k.Kid] {
			return nil, fmt.Errorf("key %d: kid %q is used twice", i, k.Kid)
		}
		seen[k.Kid] = true
		ks.keys = append(ks.keys, pk)
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("JWKS holds no signing key")
	}
	return ks, nil
}

func (k jwk) parse() (publicKey, error) {
	if k.D != "" {
		return publicKey{}, errors.New("a private key; give only public keys")
	}
	pk := publicKey{kid: k.Kid, alg: k.Alg}
	switch k.Kty {
	case "RSA":
		if pk.alg == "" {
			pk.alg = "RS256"
		}
		switch pk.alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		default:
			return publicKey{}, fmt.Errorf("alg %q does not go with an RSA key", pk.alg)
		}
		n, err := b64Int(k.N)
		if err != nil {
			return publicKey{}, fmt.Errorf("n: %w", err)
		}
		e, err := b64Int(k.E)
		if err != nil {
			return publicKey{}, fmt.Errorf("e: %w", err)
		}
		if n.BitLen() < 2048 {
			return publicKey{}, fmt.Errorf("RSA key of %d bits; at least 2048 are required", n.BitLen())
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return publicKey{}, errors.New("bad RSA exponent")
		}
		pk.key = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		var curve elliptic.Curve
		var alg string
		switch k.Crv {
		case "P-256":
			curve, alg = elliptic.P256(), "ES256"
		case "P-384":
			curve, alg = elliptic.P384(), "ES384"
		case "P-521":
			curve, alg = elliptic.P521(), "ES512"
		default:
			return publicKey{}, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		if pk.alg == "" {
			pk.alg = alg
		}
		if pk.alg != alg {
			return publicKey{}, fmt.Errorf("alg %q does not go with curve %s", pk.alg, k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64Fixed(k.X, size)
		if err != nil {
			return publicKey{}, fmt.Errorf("x: %w", err)
		}
		y, err := b64Fixed(k.Y, size)
		if err != nil {
			return publicKey{}, fmt.Errorf("y: %w", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return publicKey{}, fmt.Errorf("bad EC point: %w", err)
		}
		pk.key = pub
	case "OKP":
		if k.Crv != "Ed25519" {
			return publicKey{}, fmt.Errorf("unsupported OKP curve %q", k.Crv)
		}
		if pk.alg == "" {
			pk.alg = "EdDSA"
		}
		if pk.alg != "EdDSA" {
			return publicKey{}, fmt.Errorf("alg %q does not go with an Ed25519 key", pk.alg)
		}
		x, err := b64Fixed(k.X, ed25519.PublicKeySize)
		if err != nil {
			return publicKey{}, fmt.Errorf("x: %w", err)
		}
		pk.key = ed25519.PublicKey(x)
	case "oct":
		return publicKey{}, errors.New("symmetric keys do not belong in a JWKS file; give the HMAC secret on its own")
	default:
		return publicKey{}, fmt.Errorf("unsupported key type %q", k.Kty)
	}
	return pk, nil
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("not a base64url number")
	}
	return new(big.Int).SetBytes(b), nil
}

func b64Fixed(s string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64url")
	}
	if len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}

var errNoKey = errors.New("no key for the token's kid")

// lookup returns the key named kid; without a kid, the only key.
func (s *KeySet) lookup(kid string) (publicKey, error) {
	if kid == "" {
		if len(s.keys) == 1 {
			return s.keys[0], nil
		}
		return publicKey{}, fmt.Errorf("%w: the token has no kid and there are %d keys", errNoKey, len(s.keys))
	}
	for _, k := range s.keys {
		if k.kid == kid {
			return k, nil
		}
	}
	return publicKey{}, errNoKey
}
