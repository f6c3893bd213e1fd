// Package pgcluster runs throw-away PostgreSQL clusters: initdb in a
// temporary folder, a free loopback port, sockets in the folder, the
// server run as the postgres user when this process runs as root. Tests
// use it through internal/pgtest; 'viewsync bench pg' starts one when it
// is given no server.
//
//	c, err := pgcluster.Start("wal_level=logical")
//	if err != nil {
//		return err // no PostgreSQL installed, initdb failed…
//	}
//	defer c.Stop()
//	url := c.URL("postgres", pgcluster.Password, "postgres")
//
// Caveats: a cluster outlives a process killed before it stops it (its
// folder stays in the system's temporary folder); StopAll stops those a
// process started and did not stop.
package pgcluster

import (
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
	"syscall"
)

// Password is the superuser's (postgres) password in every cluster.
const Password = "secret"

// Cluster is a running cluster.
type Cluster struct {
	bin, dir, data string
	// Port is the loopback port it listens on.
	Port int
	// runAs is the user the server runs as when this process runs as
	// root.
	runAs *user.User
}

var (
	mu      sync.Mutex
	running []*Cluster
)

// StopAll stops every cluster Start started and not stopped.
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
	return "", fmt.Errorf("no PostgreSQL server found (initdb neither in pg_config --bindir nor in /usr/lib/postgresql/*/bin): install it (Debian: apt-get install postgresql)")
}

// Start makes and starts a cluster with settings (name=value lines of
// postgresql.conf, after the cluster's own: its port, its socket folder,
// 40 replication slots and WAL senders). Stop it with Stop, or StopAll.
func Start(settings ...string) (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "viewsync-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data")}
	if err := c.init(settings); err != nil {
		os.RemoveAll(dir)
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

// init runs initdb and writes the settings.
func (c *Cluster) init(settings []string) error {
	pwfile := filepath.Join(c.dir, "pw")
	if err := os.WriteFile(pwfile, []byte(Password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if os.Geteuid() == 0 {
		var err error
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			return fmt.Errorf("pgcluster: running as root needs a postgres user to run the server as: %w", err)
		}
		uid, gid := c.ids()
		for _, p := range []string{c.dir, pwfile} {
			if err := os.Chown(p, uid, gid); err != nil {
				return fmt.Errorf("pgcluster: %w", err)
			}
		}
	}
	if out, err := c.command("initdb", "-D", c.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"--pwfile="+pwfile, "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: initdb: %v: %s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	c.Port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("port = %d", c.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", c.dir),
		"max_replication_slots = 40",
		"max_wal_senders = 40",
	}
	for _, s := range settings {
		k, v, _ := strings.Cut(s, "=")
		conf = append(conf, strings.TrimSpace(k)+" = '"+strings.ReplaceAll(strings.TrimSpace(v), "'", "''")+"'")
	}
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: write postgresql.conf: %w", err)
	}
	return nil
}

// ids returns the postgres user's uid and gid.
func (c *Cluster) ids() (int, int) {
	uid, _ := strconv.Atoi(c.runAs.Uid)
	gid, _ := strconv.Atoi(c.runAs.Gid)
	return uid, gid
}

// command makes a command of PostgreSQL's, run as the postgres user when
// this process runs as root.
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

// Restart stops the server (fast: sessions are cut, transactions in
// flight roll back), calls down, if not nil, while it is down, then
// starts it again on the same port with the same data.
func (c *Cluster) Restart(down func()) error {
	if err := c.Ctl("stop", "-m", "fast"); err != nil {
		return err
	}
	if down != nil {
		down()
	}
	return c.Ctl("start")
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
