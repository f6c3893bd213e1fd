// Package pgtest runs throw-away PostgreSQL clusters for tests: initdb in
// a temporary folder, wal_level = logical (or as asked), a free loopback
// port, sockets in the folder, the server run as the postgres user when
// the tests run as root. A test asking for a cluster on a machine without
// PostgreSQL fails, saying so (scripts/test.sh installs it).
//
//	func TestMain(m *testing.M) { code := m.Run(); pgtest.StopAll(); os.Exit(code) }
//
//	c, url := pgtest.NewDB(t) // a database of its own on the shared cluster
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Password is the superuser's (postgres) password in every cluster.
const Password = "secret"

// Cluster is a running cluster.
type Cluster struct {
	bin, dir, data string
	// Port is the loopback port it listens on.
	Port int
	// runAs is the user the server runs as when the tests run as root.
	runAs *user.User
}

var (
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
	mu         sync.Mutex
	running    []*Cluster
	dbSeq      atomic.Int64
)

// Shared returns the process's shared cluster (wal_level = logical),
// starting it on first use.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = Start("wal_level=logical") })
	if sharedErr != nil {
		t.Fatalf("PostgreSQL test cluster: %v", sharedErr)
	}
	return shared
}

// StopAll stops every cluster Start started and not stopped; TestMain
// calls it after the tests.
func StopAll() {
	mu.Lock()
	cs := running
	running = nil
	mu.Unlock()
	for _, c := range cs {
		c.stop()
	}
}

// Bin finds PostgreSQL's programs: pg_config --bindir, else the newest
// /usr/lib/postgresql/*/bin.
func Bin() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) int { v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return v }
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server found (initdb neither in pg_config --bindir nor in /usr/lib/postgresql/*/bin): install it (Debian: apt-get install postgresql; scripts/test.sh does)")
}

// Start makes and starts a cluster with settings (name=value lines of
// postgresql.conf). Stop it with Stop, or StopAll.
func Start(settings ...string) (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "viewsync-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user to run the server as: %w", err)
		}
		uid, gid := c.ids()
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if out, err := c.command("initdb", "-D", c.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"--pwfile="+pwfile, "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", c.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", dir),
		"max_replication_slots = 40",
		"max_wal_senders = 40",
		"fsync = off",
		"full_page_writes = off",
		"shared_buffers = 32MB",
		"max_connections = 100",
	}
	for _, s := range settings {
		k, v, _ := strings.Cut(s, "=")
		conf = append(conf, k+" = '"+v+"'")
	}
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	f.Close()
	if err != nil {
		return nil, err
	}
	if err := c.Ctl("start"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	mu.Lock()
	running = append(running, c)
	mu.Unlock()
	return c, nil
}

// ids returns the postgres user's uid and gid.
func (c *Cluster) ids() (int, int) {
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return uid, gid
}

// command makes a command of PostgreSQL's, run as the postgres user when
// the tests run as root.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.runAs != nil {
		uid, gid := c.ids()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+c.dir)
	}
	return cmd
}

// Ctl runs pg_ctl (start, restart, stop, with more arguments) and waits
// for it.
func (c *Cluster) Ctl(action string, args ...string) error {
	args = append([]string{action, "-D", c.data, "-w", "-t", "60", "-l", filepath.Join(c.dir, "log")}, args...)
	if out, err := c.command("pg_ctl", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl %s: %v: %s\nserver log:\n%s", action, err, out, log)
	}
	return nil
}

// Stop stops the cluster at once and removes its files.
func (c *Cluster) Stop() {
	mu.Lock()
	for i, r := range running {
		if r == c {
			running = append(running[:i], running[i+1:]...)
			break
		}
	}
	mu.Unlock()
	c.stop()
}

func (c *Cluster) stop() {
	c.Ctl("stop", "-m", "immediate")
	os.RemoveAll(c.dir)
}

// URL returns a connection URL for user, password and database.
func (c *Cluster) URL(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, password, c.Port, db)
}

// NewDB makes a database of its own for a test on the shared cluster and
// returns the cluster, the database's name and its superuser URL. The
// test's inactive replication slots are dropped when it ends.
func NewDB(t testing.TB) (c *Cluster, name, url string) {
	t.Helper()
	c = Shared(t)
	name = fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	admin := Connect(t, c.URL("postgres", Password, "postgres"))
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL("postgres", Password, "postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", name)
	})
	return c, name, c.URL("postgres", Password, name)
}

// Connect opens a connection the test closes when it ends.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL statements, failing the test on the first error.
func Exec(t testing.TB, conn *pgx.Conn, sql ...string) {
	t.Helper()
	for _, s := range sql {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
