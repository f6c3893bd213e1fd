package boltstore_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
)

// usedBytes returns the page size and the bytes in use (the high-water
// page times the page size) of a closed store's file.
func usedBytes(t *testing.T, path string) (pageSize int, used int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		used = tx.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return db.Info().PageSize, used
}

// TestSmallCollectionsData: a new file has DefaultPageSize pages, so that
// many one-record collections take at most 2 KiB of file each; a file
// created with other pages keeps them when opened again.
func TestSmallCollectionsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "small.db")
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := range n {
		op := protocol.Op{Op: protocol.OpPut, ID: "r", Value: []byte(`{"title":"a room of its own","members":3}`)}
		if _, err := s.Apply(ctx, fmt.Sprintf("room-%05d", i), []protocol.Op{op}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	size, used := usedBytes(t, path)
	if size != boltstore.DefaultPageSize {
		t.Errorf("a new file's pages are %d bytes, want %d", size, boltstore.DefaultPageSize)
	}
	if per := used / n; per > 2048 {
		t.Errorf("%d one-record collections use %d bytes of file, %d each: want at most 2 KiB", n, used, per)
	} else {
		t.Logf("%d one-record collections: %d bytes of file in use, %d each", n, used, per)
	}

	old := filepath.Join(t.TempDir(), "old.db")
	s, err = boltstore.Open(old, &boltstore.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, "c", []protocol.Op{{Op: protocol.OpPut, ID: "a", Value: []byte(`1`)}}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = boltstore.Open(old, nil)
	if err != nil {
		t.Fatalf("reopening a file of 4 KiB pages: %v", err)
	}
	if r, err := s.Get(ctx, "c", "a"); err != nil || string(r.Value) != "1" {
		t.Errorf("reopened: %+v, %v", r, err)
	}
	s.Close()
	if size, _ := usedBytes(t, old); size != 4096 {
		t.Errorf("reopened with the default, a file of 4 KiB pages has %d", size)
	}

	for _, bad := range []int{512, 1000, 3000} {
		if s, err := boltstore.Open(filepath.Join(t.TempDir(), "bad.db"), &boltstore.Options{PageSize: bad}); err == nil {
			s.Close()
			t.Errorf("Open with page size %d: no error", bad)
		}
	}
}
