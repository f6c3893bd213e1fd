package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hs256 returns the token of header and claims, given as JSON text byte
// for byte, signed with HMAC-SHA256 over secret.
func hs256(secret, header, claims string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// TestServeRefusesTokenWithDuplicateClaims: a correctly signed token that
// says "exp" twice (an expired one first) is refused 401, with a reason
// naming the repeated claim; the same token with one "exp" is accepted.
func TestServeRefusesTokenWithDuplicateClaims(t *testing.T) {
	clearEnv(t)
	addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"), "--auth-secret", testSecret)
	past, future := time.Now().Add(-time.Hour).Unix(), time.Now().Add(time.Hour).Unix()
	header := `{"alg":"HS256","typ":"JWT"}`
	get := func(token string) (int, string, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/collections/products/version", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string }
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code, e.Error.Message
	}

	one := hs256(testSecret, header, fmt.Sprintf(`{"sub":"ana","exp":%d,"viewsync":{"read":["products"]}}`, future))
	if st, code, msg := get(one); st != http.StatusOK {
		t.Fatalf("token with one exp: %d %s %q, want 200", st, code, msg)
	}
	two := hs256(testSecret, header, fmt.Sprintf(`{"sub":"ana","exp":%d,"exp":%d,"viewsync":{"read":["products"]}}`, past, future))
	st, code, msg := get(two)
	if st != http.StatusUnauthorized || code != "unauthorized" || !strings.Contains(msg, `duplicate field "exp"`) {
		t.Fatalf("token with two exp: %d %s %q; want 401 unauthorized naming the duplicate exp", st, code, msg)
	}
}
