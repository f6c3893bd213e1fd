package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// setFileSizeLimit sets the soft limit on the size of the files process
// pid writes (RLIMIT_FSIZE), keeping its hard limit; max lifts it. Past
// it the process's writes fail with EFBIG (Go ignores SIGXFSZ), as they
// would with ENOSPC on a full disk.
func setFileSizeLimit(t *testing.T, pid int, limit uint64, max bool) {
	t.Helper()
	var old syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, 0, uintptr(unsafe.Pointer(&old)), 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
	rl := syscall.Rlimit{Cur: limit, Max: old.Max}
	if max {
		rl.Cur = old.Max
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE, uintptr(unsafe.Pointer(&rl)), 0, 0, 0); e != 0 {
		t.Fatalf("prlimit: %v", e)
	}
}

// TestServeStoreCannotWrite: when the store's file cannot grow (here the
// process's file size limit, which fails writes as a full disk does),
// writes are answered 503 unavailable saying so, and /readyz is 503 with
// the reason, until the file can grow again: then, with no client
// writing, the server becomes ready by itself and writes succeed.
func TestServeStoreCannotWrite(t *testing.T) {
	data := t.TempDir()
	p := startServer(t, data)
	put := func(id string, size int) answer {
		return send(t, http.MethodPut, p.base+"/v1/collections/c/records/"+id, strconv.Quote(strings.Repeat("x", size)))
	}
	if a := put("first", 10); a.status != http.StatusOK {
		t.Fatalf("first write: %d %s", a.status, a.body)
	}
	getOK(t, p.base+"/readyz")

	fi, err := os.Stat(filepath.Join(data, "viewsync.db"))
	if err != nil {
		t.Fatal(err)
	}
	setFileSizeLimit(t, p.cmd.Process.Pid, uint64(fi.Size()), false)
	var full answer
	for i := range 100 {
		if full = put("big"+strconv.Itoa(i), 200<<10); full.status != http.StatusOK {
			break
		}
	}
	const why = "the store cannot write: file too large"
	if full.status != http.StatusServiceUnavailable || full.code != "unavailable" || !strings.Contains(full.message, why) {
		t.Fatalf("a write the file cannot take: %d %s; want 503 unavailable saying %q", full.status, full.body, why)
	}
	if strings.Contains(full.message, data) {
		t.Errorf("the client is told the store's path: %s", full.message)
	}
	if a := send(t, http.MethodGet, p.base+"/readyz", ""); a.status != http.StatusServiceUnavailable || !strings.Contains(a.message, why) {
		t.Fatalf("/readyz while the store cannot write: %d %s; want 503 saying %q", a.status, a.body, why)
	}
	if a := send(t, http.MethodGet, p.base+"/healthz", ""); a.status != http.StatusOK {
		t.Errorf("/healthz while the store cannot write: %d %s; want 200 (the process is alive)", a.status, a.body)
	}

	setFileSizeLimit(t, p.cmd.Process.Pid, 0, true)
	deadline := time.Now().Add(30 * time.Second) // a hang guard: the probe runs each second
	for {
		a := send(t, http.MethodGet, p.base+"/readyz", "")
		if a.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after the file can grow again: %d %s", a.status, a.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if a := put("after", 200<<10); a.status != http.StatusOK {
		t.Fatalf("a write after the file can grow again: %d %s", a.status, a.body)
	}
	if !strings.Contains(p.stderr.String(), "file too large") || !strings.Contains(p.stderr.String(), data) {
		t.Errorf("the log does not tell the failed writes with the file's path:\n%s", p.stderr)
	}
}
