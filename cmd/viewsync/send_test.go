package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// answer is an HTTP answer's status and its error body, if any.
type answer struct {
	status  int
	code    string
	message string
	body    string
}

// send makes a request with body (JSON when not empty) and returns its
// answer; it fails the test when there is none.
func send(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &e)
	return answer{status: resp.StatusCode, code: e.Error.Code, message: e.Error.Message, body: string(b)}
}
