package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// mint runs 'viewsync token' and returns the token it prints.
func mint(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"token", "--auth-secret", testSecret}, args...), &out, &errb); code != 0 {
		t.Fatalf("viewsync token %v: exit %d: %s", args, code, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// status sends a request with an optional bearer token and returns the
// status and the error code of the answer.
func status(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct{ Code string }
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error.Code
}

// TestServeSecureByDefault: without a key, serve refuses to listen beyond
// loopback unless told --insecure-anonymous, and says so.
func TestServeSecureByDefault(t *testing.T) {
	clearEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"serve", "--addr", "0.0.0.0:0", "--data", dir}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--insecure-anonymous") || !strings.Contains(errb.String(), "--auth-secret") {
		t.Fatalf("serve on 0.0.0.0 without a key: exit %d, stderr %q; want exit 2 naming --auth-secret and --insecure-anonymous", code, errb.String())
	}
	if out.Len() != 0 {
		t.Fatalf("serve printed %q: it must not have listened", out.String())
	}

	addr, stderr, stop := startServe(t, "--addr", "0.0.0.0:0", "--data", dir, "--insecure-anonymous")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := status(t, "GET", "http://127.0.0.1:"+port+"/v1/collections/products/version", "", ""); got != http.StatusOK {
		t.Fatalf("anonymous read with --insecure-anonymous: %d", got)
	}
	stop()
	if !strings.Contains(stderr.String(), "ANYONE") {
		t.Errorf("no warning about anonymous access in the log:\n%s", stderr)
	}

	_, stderr, stop = startServe(t, "--addr", "127.0.0.1:0", "--data", dir)
	stop()
	if !strings.Contains(stderr.String(), "loopback only") {
		t.Errorf("on loopback without a key the log should say anonymous access is served on loopback only:\n%s", stderr)
	}
}

// TestServeWithAuthSecret: with a secret (from the environment), every
// API request needs a token, whose rights decide; tokens from 'viewsync
// token' work; limits per principal answer 429.
func TestServeWithAuthSecret(t *testing.T) {
	clearEnv(t)
	t.Setenv("VIEWSYNC_AUTH_SECRET", testSecret)
	dir := filepath.Join(t.TempDir(), "data")
	addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", dir, "--commit-rate", "1", "--commit-burst", "2")
	base := "http://" + addr
	ana := mint(t, "--sub", "ana", "--read", "products,orders.*", "--write", "products", "--call", "discount")
	bob := mint(t, "--sub", "bob", "--read", "products")

	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
		code                            string
	}{
		{"no token", "GET", "/v1/collections/products/version", "", "", 401, "unauthorized"},
		{"garbage token", "GET", "/v1/collections/products/version", "not.a.token", "", 401, "unauthorized"},
		{"read allowed", "GET", "/v1/collections/products/version", ana, "", 200, ""},
		{"read by pattern", "GET", "/v1/collections/orders.eu/version", ana, "", 200, ""},
		{"read not granted", "GET", "/v1/collections/orders/version", ana, "", 403, "forbidden"},
		{"write not granted", "PUT", "/v1/collections/products/records/p1", bob, `{"n":1}`, 403, "forbidden"},
		{"call not granted", "POST", "/v1/calls/discount", bob, `{"arg":{"percent":10}}`, 403, "forbidden"},
		{"write allowed", "PUT", "/v1/collections/products/records/p1", ana, `{"n":1}`, 200, ""},
		{"write within burst", "PUT", "/v1/collections/products/records/p2", ana, `{"n":2}`, 200, ""},
		{"write over the rate", "PUT", "/v1/collections/products/records/p3", ana, `{"n":3}`, 429, "rate_limited"},
		{"health needs no token", "GET", "/healthz", "", "", 200, ""},
	} {
		got, code := status(t, tc.method, base+tc.path, tc.token, tc.body)
		if got != tc.want || code != tc.code {
			t.Errorf("%s: %s %s → %d %q; want %d %q", tc.name, tc.method, tc.path, got, code, tc.want, tc.code)
		}
	}
	if got, _ := status(t, "GET", base+"/v1/collections/products/records/p3", ana, ""); got != http.StatusNotFound {
		t.Errorf("the write refused with 429 was applied: GET p3 → %d", got)
	}
}

// TestTokenCommandRefusesBadFlags: the token command explains what is
// missing instead of printing a token that cannot work.
func TestTokenCommandRefusesBadFlags(t *testing.T) {
	clearEnv(t)
	for _, args := range [][]string{
		{"--sub", "ana"}, // no secret
		{"--auth-secret", "short", "--sub", "ana"}, // secret too short
		{"--auth-secret", testSecret},              // no subject
		{"--auth-secret", testSecret, "--sub", "a", "--read", "Bad Name"},
		{"--auth-secret", testSecret, "--sub", "a", "--auth-secret-alg", "RS256"},
		{"--auth-secret", testSecret, "--sub", "a", "--ttl", "-1h"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append([]string{"token"}, args...), &out, &errb); code != 2 || out.Len() != 0 || errb.Len() == 0 {
			t.Errorf("token %v: exit %d, stdout %q, stderr %q; want exit 2 with an explanation and no token", args, code, out.String(), errb.String())
		}
	}
}

// TestServeMetricsAddr: --metrics-addr moves /metrics off the API's
// listener, which needs no token for it.
func TestServeMetricsAddr(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	addr, _, _ := startServe(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"), "--metrics-addr", maddr)
	if got, _ := status(t, "GET", "http://"+addr+"/metrics", "", ""); got != http.StatusNotFound {
		t.Errorf("/metrics on the API listener: %d, want 404", got)
	}
	resp, err := http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(b.String(), "viewsync_denied_total") {
		t.Errorf("/metrics on --metrics-addr: %d\n%.300s", resp.StatusCode, b.String())
	}
}
