package auth

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync/internal/errcode"
)

// JWTOptions configures a JWT verifier. At least one of Secret and Keys
// must be set.
type JWTOptions struct {
	// Secret is the HMAC key of HS256/HS384/HS512 tokens, at least 32
	// bytes.
	Secret []byte
	// SecretAlgorithm is the one algorithm tokens signed with Secret may
	// use: "HS256" (the default), "HS384" or "HS512".
	SecretAlgorithm string
	// Keys are public keys (from a JWKS file, see ParseJWKS); each pins its
	// own algorithm.
	Keys *KeySet
	// Audience, when set, must be among the token's "aud".
	Audience string
	// Issuer, when set, must be the token's "iss".
	Issuer string
	// Leeway is the clock skew allowed on "exp" and "nbf". Default 0.
	Leeway time.Duration
	// Cookie is the cookie a token may arrive in. Default DefaultCookie;
	// "-" accepts none.
	Cookie string
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// JWT verifies JSON Web Tokens and turns them into principals. Every token
// must carry "exp"; "nbf", "aud" and "iss" are checked when present or
// configured. The algorithm comes from the configuration: a token whose
// header names another ("none", or HS256 signed with a public key) is
// refused. Tokens are read strictly: a header or claims repeating a key,
// a claim Verify reads spelled in another case, or a "crit" header
// parameter (no extension is understood) is refused.
type JWT struct {
	secret    []byte
	secretAlg string
	keys      *KeySet
	leeway    time.Duration
	algs      []string // the algorithms accepted
	cookie    string
	parser    *jwt.Parser
}

// claims is a token's payload as viewsync reads it.
type claims struct {
	jwt.RegisteredClaims
	Viewsync *Rights `json:"viewsync"`
}

// NewJWT returns a verifier configured by o.
func NewJWT(o JWTOptions) (*JWT, error) {
	v := &JWT{secret: o.Secret, keys: o.Keys, cookie: o.Cookie, leeway: o.Leeway}
	var algs []string
	if len(o.Secret) > 0 {
		if len(o.Secret) < 32 {
			return nil, fmt.Errorf("auth: the HMAC secret has %d bytes; use at least 32 random bytes", len(o.Secret))
		}
		v.secretAlg = o.SecretAlgorithm
		if v.secretAlg == "" {
			v.secretAlg = "HS256"
		}
		if !slices.Contains([]string{"HS256", "HS384", "HS512"}, v.secretAlg) {
			return nil, fmt.Errorf("auth: secret algorithm %q: want HS256, HS384 or HS512", v.secretAlg)
		}
		algs = append(algs, v.secretAlg)
	}
	if o.Keys != nil && o.Keys.Len() > 0 {
		for _, k := range o.Keys.keys {
			if !slices.Contains(algs, k.alg) {
				algs = append(algs, k.alg)
			}
		}
	}
	if len(algs) == 0 {
		return nil, errors.New("auth: no key: set an HMAC secret or public keys")
	}
	switch v.cookie {
	case "":
		v.cookie = DefaultCookie
	case "-":
		v.cookie = ""
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithJSONNumber(),
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(o.Now))
	}
	v.parser = jwt.NewParser(popts...)
	v.algs = algs
	return v, nil
}

// Authenticate implements Func: the principal of r's token, or an error
// wrapping viewsync.ErrUnauthorized when r carries none or a bad one.
func (v *JWT) Authenticate(r *http.Request) (Principal, error) {
	tok, err := TokenFromRequest(r, v.cookie)
	if err != nil {
		return Principal{}, err
	}
	if tok == "" {
		return Principal{}, fmt.Errorf("%w: a token is required (Authorization: Bearer, or the token query parameter or cookie)", errcode.ErrUnauthorized)
	}
	return v.Verify(tok)
}

// Verify checks a token and returns its principal. Every failure wraps
// viewsync.ErrUnauthorized with a reason that names the check that failed
// and nothing of the key.
func (v *JWT) Verify(token string) (Principal, error) {
	if len(token) > MaxTokenBytes {
		return Principal{}, fmt.Errorf("%w: token longer than %d bytes", errcode.ErrUnauthorized, MaxTokenBytes)
	}
	if err := checkStrict(token); err != nil {
		return Principal{}, fmt.Errorf("%w: %w", errcode.ErrUnauthorized, err)
	}
	var c claims
	t, err := v.parser.ParseWithClaims(token, &c, v.key)
	if err != nil {
		why := reason(err)
		if t != nil && t.Method != nil && !slices.Contains(v.algs, t.Method.Alg()) {
			// jwt.WithValidMethods refused the header's alg (as a bare
			// ErrTokenSignatureInvalid) before any key was tried.
			why = "token algorithm not allowed"
		}
		return Principal{}, fmt.Errorf("%w: %s", errcode.ErrUnauthorized, why)
	}
	p := Principal{Subject: c.Subject}
	if c.ExpiresAt != nil {
		// Streams end when the token stops being accepted: exp plus the
		// leeway the parser allows.
		p.Expires = c.ExpiresAt.Add(v.leeway)
	}
	if c.Viewsync != nil {
		if err := c.Viewsync.Validate(); err != nil {
			return Principal{}, fmt.Errorf("%w: the token's viewsync claim: %v", errcode.ErrUnauthorized, err)
		}
		p.Rights = *c.Viewsync
	}
	return p, nil
}

// key picks the verification key for t, pinning the algorithm: the secret
// only for its configured algorithm, a public key only for its own.
func (v *JWT) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if v.secretAlg != "" && alg == v.secretAlg {
		return v.secret, nil
	}
	if v.keys == nil {
		return nil, errAlgorithm
	}
	kid, _ := t.Header["kid"].(string)
	k, err := v.keys.lookup(kid)
	if err != nil {
		return nil, err
	}
	if k.alg != alg {
		return nil, errAlgorithm
	}
	return k.key, nil
}

var errAlgorithm = errors.New("the token's algorithm is not the one configured for its key")

// reason turns a parse error into a short, safe explanation.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if errors.Is(err, jwt.ErrTokenUnverifiable) || errors.Is(err, errAlgorithm) {
			return "token algorithm not allowed"
		}
		return "bad token signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "token not meant for this audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "token from another issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim (exp, or the aud or iss configured)"
	case errors.Is(err, errNoKey):
		// Before ErrTokenUnverifiable, which wraps every keyfunc error.
		return err.Error()
	case errors.Is(err, errAlgorithm), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token algorithm not allowed"
	}
	return "invalid token"
}
