//go:build linux

package main

// Tests of the built server's connection limits. Clients pose as several
// addresses by connecting from 127.0.0.2, 127.0.0.3, … (all loopback on
// Linux). Settings that are new with these limits are given as VIEWSYNC_*
// variables, so that a server without them starts all the same and the
// tests show what it does.

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// idleFrom opens a connection from the address from, makes one request
// on it and leaves it idle, kept alive.
func idleFrom(t *testing.T, p *proc, from string) *rawClient {
	t.Helper()
	c := dialFrom(t, p, from)
	c.send("GET /v1/collections/c/version HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.mustResponse("GET version from " + from)
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET version from %s: %d %s, close %v", from, resp.StatusCode, body, resp.Close)
	}
	return c
}

// streamFrom opens an SSE stream from the address from and returns once
// its headers came.
func streamFrom(t *testing.T, p *proc, from string) *rawClient {
	t.Helper()
	c := dialFrom(t, p, from)
	c.send("GET /v1/collections/c/events HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.mustResponse("SSE from " + from)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE from %s: %d %s", from, resp.StatusCode, body)
	}
	return c
}

// deniedConnections scrapes viewsync_denied_total{code="too_many_connections"}.
func deniedConnections(t *testing.T, p *proc) int {
	t.Helper()
	code, body := httpStatus(t, "GET", p.base+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	m := regexp.MustCompile(`(?m)^viewsync_denied_total\{code="too_many_connections"\} (\d+)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no too_many_connections in /metrics")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestServeCountsIdleConnectionsPerAddress: --max-conns-per-ip counts
// connections, idle keep-alive ones included, not only requests in
// progress; other addresses are not affected, and the refusals are logged
// and counted.
func TestServeCountsIdleConnectionsPerAddress(t *testing.T) {
	p := startGuarded(t, 0, []string{"VIEWSYNC_HEALTH_CONNS=4"}, "--max-conns-per-ip", "4")
	for range 4 {
		idleFrom(t, p, "127.0.0.2")
	}
	// A fifth connection from the address may only ask for a health path.
	c := dialFrom(t, p, "127.0.0.2")
	c.send("GET /v1/collections/c/version HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.mustResponse("a fifth connection")
	checkError(t, "a fifth connection", resp, body, http.StatusTooManyRequests, "rate_limited")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if !c.closed() {
		t.Error("the refused connection stays open")
	}
	// Past those health-only connections (here one per address, held
	// silent), connections are refused at once.
	dialFrom(t, p, "127.0.0.2")
	c = dialFrom(t, p, "127.0.0.2")
	resp, body = c.mustResponse("a connection past the health-only ones")
	checkError(t, "a connection past the health-only ones", resp, body, http.StatusTooManyRequests, "rate_limited")
	if !c.closed() {
		t.Error("the connection refused at accept stays open")
	}

	idleFrom(t, p, "127.0.0.3")
	if n := deniedConnections(t, p); n < 2 {
		t.Errorf("viewsync_denied_total{code=\"too_many_connections\"} = %d, want at least 2", n)
	}
	if log := p.stderr.String(); !strings.Contains(log, "connections refused") || !strings.Contains(log, "addr=127.0.0.2") {
		t.Errorf("no warning of the refusals in the log:\n%s", log)
	}
}

// TestServeHealthAtTheStreamLimit: an address holding as many streams as
// --max-conns-per-ip allows still gets its health checks answered.
func TestServeHealthAtTheStreamLimit(t *testing.T) {
	p := startGuarded(t, 0, nil, "--max-conns-per-ip", "2")
	streamFrom(t, p, "127.0.0.2")
	streamFrom(t, p, "127.0.0.2")
	for _, path := range []string{"/healthz", "/readyz"} {
		c := dialFrom(t, p, "127.0.0.2")
		c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.mustResponse(path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s at the stream limit: %d %s, want 200", path, resp.StatusCode, body)
		}
	}
	c := dialFrom(t, p, "127.0.0.2")
	c.send("GET /v1/collections/c/version HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.mustResponse("version at the stream limit")
	checkError(t, "version at the stream limit", resp, body, http.StatusTooManyRequests, "rate_limited")
}

// TestServeIdleTimeout: a kept-alive connection left idle is closed after
// --idle-timeout.
func TestServeIdleTimeout(t *testing.T) {
	p := startGuarded(t, 0, []string{"VIEWSYNC_IDLE_TIMEOUT=500ms"})
	c := idleFrom(t, p, "")
	if !c.closed() {
		t.Errorf("an idle connection is still open after %v", rawWait)
	}
}

// TestServeOpenFilesLimit: under a small open-files limit, a flood of idle
// connections from one address neither exhausts the server's descriptors
// nor locks other clients out: the longest idle connections are closed to
// make room. When every connection is busy, new ones get 503, and health
// checks still get through.
func TestServeOpenFilesLimit(t *testing.T) {
	const openFiles, maxConns = 256, 128 // maxConnsFor(256)
	if got := maxConnsFor(openFiles); got != maxConns {
		t.Fatalf("maxConnsFor(%d) = %d, want %d", openFiles, got, maxConns)
	}
	p := startGuarded(t, openFiles, nil)

	// Two flood connections each for every descriptor.
	flood := make([]*rawClient, 2*openFiles)
	for i := range flood {
		c := dialFrom(t, p, "127.0.0.2")
		c.send("GET /v1/collections/c/version HTTP/1.1\r\nHost: x\r\n\r\n")
		flood[i] = c
	}
	if code, body := httpStatus(t, "GET", p.base+"/healthz", ""); code != http.StatusOK {
		t.Fatalf("GET /healthz during the flood: %d %s", code, body)
	}
	other := dialFrom(t, p, "127.0.0.3")
	other.send("PUT /v1/collections/c/records/r HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
	if resp, body := other.mustResponse("a write from another address"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a write from another address during the flood: %d %s", resp.StatusCode, body)
	}
	if log := p.stderr.String(); !strings.Contains(log, "max_conns="+strconv.Itoa(maxConns)) || !strings.Contains(log, "open_files_limit="+strconv.Itoa(openFiles)) {
		t.Errorf("the log does not give the connection limit and the open-files limit:\n%s", log)
	}
	for _, c := range flood {
		c.Close()
	}
	other.Close()

	// Busy connections are not closed: past the limit new ones get 503.
	for range maxConns {
		streamFrom(t, p, "127.0.0.2")
	}
	c := dialFrom(t, p, "127.0.0.4")
	c.send("GET /v1/collections/c/version HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := c.mustResponse("a connection past --max-conns")
	checkError(t, "a connection past --max-conns", resp, body, http.StatusServiceUnavailable, "unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	h := dialFrom(t, p, "127.0.0.5")
	h.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := h.mustResponse("/healthz past --max-conns"); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz past --max-conns: %d %s", resp.StatusCode, body)
	}
}
