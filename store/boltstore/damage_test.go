package boltstore_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store"
	"github.com/viewsync/viewsync/store/boltstore"
)

// damageColls are the collections of the files the damage tests spoil.
var damageColls = []string{"a", "b", "c"}

// writeDamageFile makes a store file worth spoiling at path: a few
// collections whose buckets span several pages, with deletions.
func writeDamageFile(t *testing.T, path string) {
	t.Helper()
	s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	value := `"` + strings.Repeat("v", 100) + `"`
	for _, c := range damageColls {
		for i := range 150 {
			mustApply(t, s, c, []protocol.Op{put("id"+strconv.Itoa(i), value)}, nil)
		}
		for i := range 20 {
			mustApply(t, s, c, []protocol.Op{del("id" + strconv.Itoa(i*3))}, nil)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// fileLayout reads, with bbolt itself, what the damage tests aim at: the
// page size, how many pages the file's meta counts, and the root page of
// the records bucket of collection b.
type fileLayout struct {
	pageSize     int
	pages        int64
	recordsRootB int64
}

func layoutOf(t *testing.T, path string) fileLayout {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := fileLayout{pageSize: db.Info().PageSize}
	err = db.View(func(tx *bolt.Tx) error {
		l.pages = tx.Size() / int64(l.pageSize)
		l.recordsRootB = int64(tx.Bucket([]byte("b")).Bucket([]byte("records")).Root())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if l.recordsRootB < 2 {
		t.Fatalf("the records of b are inline (root page %d); the test needs a bucket of its own pages", l.recordsRootB)
	}
	return l
}

// spoil writes garbage over pages [first, first+n) of the file at path.
func spoil(t *testing.T, path string, pageSize int, first, n int64, seed uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, int64(pageSize)*n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(junk)
	if _, err := f.WriteAt(junk, first*int64(pageSize)); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies the file src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestOpenRefusesDamagedFile: a file cut short, or with garbage where bbolt
// or every request reads first (the meta pages, the root page of a
// collection's bucket), is refused by Open with ErrDamaged — no panic, no
// fault — and left as it was, its lock released.
func TestOpenRefusesDamagedFile(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.db")
	writeDamageFile(t, good)
	l := layoutOf(t, good)
	t.Logf("%d pages of %d bytes; the records of b start at page %d", l.pages, l.pageSize, l.recordsRootB)
	size := l.pages * int64(l.pageSize)

	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string)
		want  string
	}{
		{"cut to half", func(t *testing.T, path string) { os.Truncate(path, size/2) }, "cut short"},
		{"cut by one page", func(t *testing.T, path string) { os.Truncate(path, size-int64(l.pageSize)) }, "cut short"},
		{"cut to three pages", func(t *testing.T, path string) { os.Truncate(path, 3*int64(l.pageSize)) }, "cut short"},
		{"cut within the meta pages", func(t *testing.T, path string) { os.Truncate(path, 1000) }, ""},
		{"garbage over both meta pages", func(t *testing.T, path string) { spoil(t, path, l.pageSize, 0, 2, 1) }, ""},
		{"garbage over the records root of b", func(t *testing.T, path string) { spoil(t, path, l.pageSize, l.recordsRootB, 1, 2) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v.db")
			copyFile(t, good, path)
			tc.spoil(t, path)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second time finds the file unlocked
				// A lock left behind would keep Open waiting a minute,
				// far past what a busy machine takes.
				start := time.Now()
				s, err := boltstore.Open(path, &boltstore.Options{LockTimeout: time.Minute})
				if err == nil {
					s.Close()
					t.Fatal("Open of a damaged file succeeded")
				}
				if !errors.Is(err, boltstore.ErrDamaged) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Open = %v, want an error naming the file, wrapping ErrDamaged and saying %q", err, tc.want)
				}
				if d := time.Since(start); d > 30*time.Second {
					t.Fatalf("Open took %v: did it wait for a lock it left behind?", d)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Fatalf("Open changed the damaged file (%d bytes, then %d)", len(before), len(after))
			}
		})
	}
}

// TestDamagedPagesFailTheirRequests spoils each page of a file in turn.
// Open refuses the file (ErrDamaged) or opens it; then every read and
// write answers, each either as usual or with an error wrapping
// ErrDamaged: bbolt's panics on the page, or its faults, never reach the
// caller (they would crash a server).
func TestDamagedPagesFailTheirRequests(t *testing.T) {
	ctx := context.Background()
	good := filepath.Join(t.TempDir(), "good.db")
	writeDamageFile(t, good)
	l := layoutOf(t, good)
	var refused, failed int
	check := func(what string, err error) {
		t.Helper()
		switch {
		case err == nil:
		case errors.Is(err, boltstore.ErrDamaged):
			failed++
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrPrecondition):
			// The page held the answer's record or the version checked.
		default:
			t.Errorf("%s: %v, want nil or an error wrapping ErrDamaged", what, err)
		}
	}
	for page := int64(2); page < l.pages; page++ {
		path := filepath.Join(t.TempDir(), "v.db")
		copyFile(t, good, path)
		spoil(t, path, l.pageSize, page, 1, uint64(page))
		s, err := boltstore.Open(path, &boltstore.Options{NoSync: true})
		if err != nil {
			if !errors.Is(err, boltstore.ErrDamaged) {
				t.Fatalf("page %d: Open = %v, want nil or ErrDamaged", page, err)
			}
			refused++
			continue
		}
		for _, c := range damageColls {
			_, err := s.Head(ctx, c)
			check("Head", err)
			_, err = s.Get(ctx, c, "id100")
			check("Get", err)
			_, err = s.Snapshot(ctx, c)
			check("Snapshot", err)
			_, err = s.Changes(ctx, c, 0, store.Page{})
			check("Changes", err)
			_, err = s.CatchUp(ctx, c, 100)
			check("CatchUp", err)
			_, err = s.Apply(ctx, c, []protocol.Op{put("id149", `1`), del("id148")}, nil)
			check("Apply", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("page %d: Close: %v", page, err)
		}
	}
	t.Logf("%d pages spoiled: %d refused at Open, %d requests failed with ErrDamaged", l.pages-2, refused, failed)
	if refused == 0 || failed == 0 {
		t.Fatalf("no damage was found (%d refused, %d failed): the test spoils nothing", refused, failed)
	}
}

// TestOpenMakesParentDirectories: the file's missing directories are
// created.
func TestOpenMakesParentDirectories(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "v.db")
	openAt(t, path, nil)
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o027 != 0 {
		t.Fatalf("directory %v, %v; want one closed to others", fi, err)
	}
}

// TestOpenRefusesLockedFileAtOnce: a file another Open holds is refused
// with ErrLocked after DefaultLockTimeout, at most a second (the time
// taken is bounded only by a hang guard: the machine may be busy).
func TestOpenRefusesLockedFileAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	openAt(t, path, nil)
	start := time.Now()
	s, err := boltstore.Open(path, nil)
	took := time.Since(start)
	if err == nil {
		s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, boltstore.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want ErrLocked naming the file", err)
	}
	if took > 20*time.Second || boltstore.DefaultLockTimeout > time.Second {
		t.Fatalf("Open gave up after %v (DefaultLockTimeout %v), want within a second or so", took, boltstore.DefaultLockTimeout)
	}
}
