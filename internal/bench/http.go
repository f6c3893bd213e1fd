package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/viewsync/viewsync/protocol"
)

// fetch sends a request of method to url, with body unless it is nil and
// the header's fields, and returns the answer with its whole body.
func fetch(ctx context.Context, client *http.Client, method, url string, body []byte, header http.Header) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(req.Header, header)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// getHead reads the collection's head, checking that the server answers.
func getHead(ctx context.Context, client *http.Client, base, coll string) (protocol.Head, error) {
	u := base + "/v1/collections/" + coll + "/version"
	resp, b, err := fetch(ctx, client, http.MethodGet, u, nil, nil)
	if resp == nil {
		return protocol.Head{}, fmt.Errorf("the server does not answer: %w", err)
	}
	var hd protocol.Head
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &hd) != nil {
		return protocol.Head{}, fmt.Errorf("GET %s: %s %s", u, resp.Status, bytes.TrimSpace(b))
	}
	return hd, nil
}

// getBody GETs url and returns the body of a 200 and its Cache-Control.
func getBody(ctx context.Context, client *http.Client, url string) ([]byte, string, error) {
	resp, b, err := fetch(ctx, client, http.MethodGet, url, nil, nil)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s %.300s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, resp.Header.Get("Cache-Control"), nil
}

// getSnapshot reads the whole collection.
func getSnapshot(ctx context.Context, client *http.Client, base, coll string) (protocol.Snapshot, error) {
	u := base + "/v1/collections/" + coll
	b, _, err := getBody(ctx, client, u)
	if err != nil {
		return protocol.Snapshot{}, err
	}
	var s protocol.Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return protocol.Snapshot{}, fmt.Errorf("GET %s: %w", u, err)
	}
	return s, nil
}

// jsonHeader is the header of a request whose body is JSON.
var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// put PUTs a value and returns the version it was acknowledged at.
func put(ctx context.Context, client *http.Client, url string, value []byte) (uint64, error) {
	resp, b, err := fetch(ctx, client, http.MethodPut, url, value, jsonHeader)
	if err != nil {
		return 0, err
	}
	var ans protocol.RecordResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &ans) != nil || ans.Version == 0 {
		return 0, fmt.Errorf("PUT: %s %s", resp.Status, bytes.TrimSpace(b))
	}
	return ans.Version, nil
}

// benchValue is the value of a writer's i-th commit, padded to size
// bytes: {"sent_ns":…,"seq":…,"pad":"xx…"}.
func benchValue(now time.Time, i, size int) []byte {
	return padValue(fmt.Appendf(nil, `{"sent_ns":%d,"seq":%d,"pad":"`, now.UnixNano(), i), size)
}

// ownedValue is benchValue with an "owner" field, for the views of
// 'viewsync bench fanout --views': {"sent_ns":…,"seq":…,"owner":…,"pad":"xx…"}.
func ownedValue(now time.Time, i, size int, owner string) []byte {
	return padValue(fmt.Appendf(nil, `{"sent_ns":%d,"seq":%d,"owner":%q,"pad":"`, now.UnixNano(), i, owner), size)
}

// padValue ends a value begun with an open "pad" string, padded to size
// bytes (or past it, for a long beginning).
func padValue(b []byte, size int) []byte {
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// eventsRequest returns the request of an SSE subscription to the
// collection, or to its view by the filter where ("" for none), from cur
// (nil: starting with a reset).
func eventsRequest(ctx context.Context, base, coll, where string, cur *protocol.Cursor) (*http.Request, error) {
	u := base + "/v1/collections/" + coll + "/events"
	if where != "" {
		u += "?where=" + url.QueryEscape(where)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if cur != nil {
		req.Header.Set("Last-Event-ID", cur.String())
	}
	return req, nil
}

// refusal reads an answer other than 200 to a reader's request: a 503 is
// the server busy (retry after the wait its Retry-After asks for), anything
// else an error naming the request.
func refusal(resp *http.Response, body io.Reader, request string) (wait time.Duration, busy bool, err error) {
	if resp.StatusCode == http.StatusServiceUnavailable {
		io.Copy(io.Discard, io.LimitReader(body, 64<<10))
		return retryAfter(resp.Header), true, nil
	}
	b, _ := io.ReadAll(io.LimitReader(body, 512))
	return 0, false, fmt.Errorf("%s: %s %s", request, resp.Status, bytes.TrimSpace(b))
}

// retryAfter returns the wait a Retry-After header asks for, in seconds; a
// second when it has none.
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return time.Second
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
