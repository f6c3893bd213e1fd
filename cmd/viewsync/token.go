package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/viewsync/viewsync/auth"
	"github.com/viewsync/viewsync/internal/cliflag"
)

// tokenConfig holds the flags of 'viewsync token'.
type tokenConfig struct {
	secret     string
	secretFile string
	alg        string
	subject    string
	read       string
	write      string
	call       string
	ttl        time.Duration
	audience   string
	issuer     string
}

// token mints an HMAC-signed token for development, tests and scripts:
// production tokens come from the application's own login.
func token(args []string, stdout, stderr io.Writer) error {
	c := &tokenConfig{}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.secret, "auth-secret", "", "HMAC secret the server verifies tokens with (prefer VIEWSYNC_AUTH_SECRET or --auth-secret-file)")
	fs.StringVar(&c.secretFile, "auth-secret-file", "", "file holding the HMAC secret")
	fs.StringVar(&c.alg, "auth-secret-alg", "HS256", "signing algorithm: HS256, HS384 or HS512 (the server's --auth-secret-alg)")
	fs.StringVar(&c.subject, "sub", "", "the token's subject: who it is for (rate limits are kept per subject)")
	fs.StringVar(&c.read, "read", "", "comma-separated collection patterns the token may read (e.g. products,orders.*)")
	fs.StringVar(&c.write, "write", "", "comma-separated collection patterns the token may write")
	fs.StringVar(&c.call, "call", "", "comma-separated call names (or patterns) the token may call")
	fs.DurationVar(&c.ttl, "ttl", time.Hour, "how long the token is valid")
	fs.StringVar(&c.audience, "aud", "", "the token's audience (the server's --auth-audience)")
	fs.StringVar(&c.issuer, "iss", "", "the token's issuer (the server's --auth-issuer)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: viewsync token --sub NAME [--read P,…] [--write P,…] [--call P,…] [flags]

Prints a JWT signed with the server's HMAC secret, granting the rights given,
for development, tests and scripts. In production, tokens come from your
application's login, signed with the same secret or with a key in the
server's --auth-jwks.

  VIEWSYNC_AUTH_SECRET=… viewsync token --sub ana --read 'products' --write products --call discount

Flags (each also set by the environment variable shown; the command line wins):
`)
		cliflag.PrintFlags(fs.Output(), fs, nil)
	}
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	secret, err := loadSecret(c.secret, c.secretFile)
	if err != nil {
		return err
	}
	switch {
	case len(secret) == 0:
		return fmt.Errorf("%w: give the secret with --auth-secret, --auth-secret-file or VIEWSYNC_AUTH_SECRET", cliflag.ErrBadFlag)
	case len(secret) < 32:
		return fmt.Errorf("%w: the secret has %d bytes; the server requires at least 32", cliflag.ErrBadFlag, len(secret))
	case c.subject == "":
		return fmt.Errorf("%w: --sub is required", cliflag.ErrBadFlag)
	case c.ttl <= 0:
		return fmt.Errorf("%w: --ttl must be positive", cliflag.ErrBadFlag)
	}
	method := jwt.GetSigningMethod(c.alg)
	if method == nil || !strings.HasPrefix(c.alg, "HS") {
		return fmt.Errorf("%w: --auth-secret-alg must be HS256, HS384 or HS512", cliflag.ErrBadFlag)
	}
	rights := auth.Rights{Read: splitList(c.read), Write: splitList(c.write), Call: splitList(c.call)}
	if err := rights.Validate(); err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":      c.subject,
		"iat":      now.Unix(),
		"exp":      now.Add(c.ttl).Unix(),
		"viewsync": rights,
	}
	if c.audience != "" {
		claims["aud"] = c.audience
	}
	if c.issuer != "" {
		claims["iss"] = c.issuer
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(secret)
	if err != nil {
		return errors.New("signing failed: " + err.Error())
	}
	fmt.Fprintln(stdout, s)
	return nil
}
