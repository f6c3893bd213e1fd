//go:build unix

package main

// What an operator sees when the store's file cannot be used, through the
// binary: a damaged file and a file another server holds each stop serve
// at once with a message that says what is wrong and what to do, and no
// stack trace. (storefail_linux_test.go: a store that cannot write.)

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
)

// runServe runs the binary's serve on data to its end (bounded by the
// test's hang guard) and returns its exit code, its output and how long it
// ran.
func runServe(t *testing.T, data string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-hangGuard(t):
			cancel()
		case <-ctx.Done():
		}
	}()
	cmd := exec.CommandContext(ctx, serverBinary(t), "serve", "--addr", "127.0.0.1:0", "--data", data)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "VIEWSYNC_") })
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("running serve: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("serve did not stop:\n%s", errb.String())
	}
	return code, out.String(), errb.String(), took
}

// wantRefusal checks that serve stopped with exit code 1 before listening,
// saying each of want, without a stack trace.
func wantRefusal(t *testing.T, code int, stdout, stderr string, want ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if strings.Contains(stdout, "listening") {
		t.Errorf("serve started listening: %q", stdout)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, stderr)
		}
	}
	for _, trace := range []string{"goroutine ", "panic", ".go:"} {
		if strings.Contains(stderr, trace) {
			t.Errorf("stderr has a stack trace (%q):\n%s", trace, stderr)
		}
	}
}

// writeStoreFile makes a store file at path with two collections whose
// records span several pages, and returns the page size, the number of
// pages the file holds, and the root page of the records of one of the
// collections, the one nearer the middle of the file.
func writeStoreFile(t *testing.T, path string) (pageSize int, pages, recordsRoot int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	value, _ := json.Marshal(strings.Repeat("v", 500))
	for _, c := range []string{"a", "b"} {
		for i := range 200 {
			op := protocol.Op{Op: protocol.OpPut, ID: "id" + strconv.Itoa(i), Value: value}
			if _, err := st.Apply(context.Background(), c, []protocol.Op{op}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pageSize = db.Info().PageSize
	err = db.View(func(tx *bolt.Tx) error {
		pages = tx.Size() / int64(pageSize)
		for _, c := range []string{"a", "b"} {
			root := int64(tx.Bucket([]byte(c)).Bucket([]byte("records")).Root())
			if root < 2 {
				return fmt.Errorf("the records of %s are inline", c)
			}
			if recordsRoot == 0 || abs(root-pages/2) < abs(recordsRoot-pages/2) {
				recordsRoot = root
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pageSize, pages, recordsRoot
}

func abs(n int64) int64 { return max(n, -n) }

// TestServeRefusesDamagedStore: serve on a data file cut short, or with
// garbage over a page in its middle that it reads first, exits 1 naming
// the file and saying how to recover, without a bbolt stack trace.
func TestServeRefusesDamagedStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string, pageSize int, pages, recordsRoot int64)
	}{
		{"cut to half", func(t *testing.T, path string, pageSize int, pages, _ int64) {
			if err := os.Truncate(path, pages*int64(pageSize)/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"cut to three pages", func(t *testing.T, path string, pageSize int, _, _ int64) {
			if err := os.Truncate(path, 3*int64(pageSize)); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage over a page in the middle", func(t *testing.T, path string, pageSize int, _, recordsRoot int64) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			junk := []byte(strings.Repeat("garbage!", pageSize/8))
			if _, err := f.WriteAt(junk, recordsRoot*int64(pageSize)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			path := filepath.Join(data, "viewsync.db")
			pageSize, pages, root := writeStoreFile(t, path)
			tc.spoil(t, path, pageSize, pages, root)
			code, stdout, stderr, _ := runServe(t, data)
			wantRefusal(t, code, stdout, stderr, path, "the data file is damaged",
				"restore it from a backup", "move it aside to start empty")
		})
	}
}

// TestServeRefusesStoreInUse: a second server on the data folder of a
// running one stops within two seconds, saying the folder is in use; the
// first one goes on serving.
func TestServeRefusesStoreInUse(t *testing.T) {
	data := t.TempDir()
	first := startServer(t, data)
	code, stdout, stderr, took := runServe(t, data)
	path := filepath.Join(data, "viewsync.db")
	wantRefusal(t, code, stdout, stderr, path+" is locked: another viewsync process uses --data "+data)
	t.Logf("the second server gave up after %v", took)
	getOK(t, first.base+"/readyz")
}
