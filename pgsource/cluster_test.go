package pgsource_test

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

// The tests run one throw-away PostgreSQL cluster for the package,
// started by the first test that needs it and stopped by TestMain.

// password is the superuser's password in the test clusters.
const password = "secret"

// pgCluster is a running test cluster.
type pgCluster struct {
	bin, dir, data string
	port           int
	// runAs is the user the server runs as when the tests run as root.
	runAs *user.User
}

var (
	clusterOnce sync.Once
	shared      *pgCluster
	clusterErr  error
	clusters    []*pgCluster
	clustersMu  sync.Mutex
	dbSeq       atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	clustersMu.Lock()
	for _, c := range clusters {
		c.stop()
	}
	clustersMu.Unlock()
	os.Exit(code)
}

// cluster returns the package's cluster, starting it on first use. No
// PostgreSQL on the machine fails the test.
func cluster(t testing.TB) *pgCluster {
	t.Helper()
	clusterOnce.Do(func() { shared, clusterErr = newCluster("wal_level=logical") })
	if clusterErr != nil {
		t.Fatalf("PostgreSQL test cluster: %v", clusterErr)
	}
	return shared
}

// pgBin finds PostgreSQL's programs: pg_config --bindir, else the newest
// /usr/lib/postgresql/*/bin.
func pgBin() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		b, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return a > b
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server found (initdb neither in pg_config --bindir nor in /usr/lib/postgresql/*/bin): install it (Debian: apt-get install postgresql; scripts/test.sh does)")
}

// newCluster makes and starts a cluster with the given settings.
func newCluster(settings ...string) (*pgCluster, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "viewsync-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		return nil, err
	}
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		os.Chown(pwfile, uid, gid)
	}
	if out, err := c.command("initdb", "-D", c.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"--pwfile="+pwfile, "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", c.port),
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
	if err := c.ctl("start"); err != nil {
		return nil, err
	}
	clustersMu.Lock()
	clusters = append(clusters, c)
	clustersMu.Unlock()
	return c, nil
}

// command makes a command of PostgreSQL's, run as the postgres user when
// the tests run as root.
func (c *pgCluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+c.dir)
	}
	return cmd
}

// ctl runs pg_ctl start, restart or stop, waiting for it.
func (c *pgCluster) ctl(action string, args ...string) error {
	args = append([]string{action, "-D", c.data, "-w", "-t", "60", "-l", filepath.Join(c.dir, "log")}, args...)
	if out, err := c.command("pg_ctl", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl %s: %v: %s\nserver log:\n%s", action, err, out, log)
	}
	return nil
}

// stop stops the cluster and removes its files.
func (c *pgCluster) stop() {
	c.ctl("stop", "-m", "immediate")
	os.RemoveAll(c.dir)
}

// url returns a connection URL for user and database.
func (c *pgCluster) url(user, pass, db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, pass, c.port, db)
}

// newDB makes a database of its own for a test and returns its
// superuser URL. The test's slots are dropped when it ends.
func newDB(t testing.TB) (*pgCluster, string) {
	t.Helper()
	c := cluster(t)
	name := fmt.Sprintf("t%d", dbSeq.Add(1))
	admin := connect(t, c.url("postgres", password, "postgres"))
	if _, err := admin.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.url("postgres", password, "postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", name)
	})
	return c, c.url("postgres", password, name)
}

// connect opens a connection the test closes when it ends.
func connect(t testing.TB, url string) *pgx.Conn {
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

// exec runs SQL statements, failing the test on error.
func exec1(t testing.TB, conn *pgx.Conn, sql ...string) {
	t.Helper()
	for _, s := range sql {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
