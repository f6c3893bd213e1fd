package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/viewsync/viewsync/internal/cliflag"
	"github.com/viewsync/viewsync/protocol"
)

// benchCommon holds the flags every scenario has, and what it needs of the
// Command.
type benchCommon struct {
	transport      string
	collection     string
	url            string
	spawn          bool
	json           bool
	sourceIPs      string
	dialParallel   int
	connectTimeout time.Duration
	setupTimeout   time.Duration
	// views, when positive, puts the subscriber numbered i (counting the
	// process's from first) on the view of owner i mod views (fanout
	// --views); 0 subscribes to the whole collection.
	views, first int
	// colls, when positive, puts the subscriber numbered i on the
	// collection NAME-(i mod colls) of its own ('viewsync bench
	// collections'); 0: every subscriber on --collection.
	colls int
	// natsCluster: --spawn starts a three-node NATS cluster and three
	// viewsync nodes on it (cluster.go), or natsNodes when set.
	natsCluster bool
	natsNodes   int
	// cmd is the Command running the scenario.
	cmd *Command
	// serverArgs are added to a spawned server's command line.
	serverArgs []string
}

// minValueSize fits the send time, the sequence number and the JSON
// around them: the smallest --value-size.
const minValueSize = 64

// defaultValueSize is --value-size's default.
const defaultValueSize = 100

// newFlagSet returns a flag set that prints to stderr, its help being
// usage followed by the flags.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		cliflag.PrintFlags(fs.Output(), fs, nil)
	}
	return fs
}

// defaultCommon returns the common flags at their defaults.
func defaultCommon(cmd *Command) benchCommon {
	return benchCommon{transport: "sse", collection: "bench", dialParallel: 64, connectTimeout: 30 * time.Second,
		setupTimeout: 5 * time.Minute, cmd: cmd}
}

// flags returns the flag set of 'viewsync bench NAME', with c at its
// defaults and the flags that name the server and the report registered:
// --collection (described by collUsage), --url, --spawn, --json.
func (cmd *Command) flags(name, usage, collUsage string, c *benchCommon, stderr io.Writer) *flag.FlagSet {
	*c = defaultCommon(cmd)
	fs := newFlagSet("bench "+name, usage, stderr)
	fs.StringVar(&c.collection, "collection", c.collection, collUsage)
	fs.StringVar(&c.url, "url", "", "base URL of the server to load, e.g. http://127.0.0.1:8080 (or use --spawn)")
	fs.BoolVar(&c.spawn, "spawn", false, "start 'viewsync serve' on a fresh data directory and load it; reports its CPU time and memory")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON instead of a table")
	return fs
}

// common returns the flags every scenario has.
func (c *benchCommon) common() *benchCommon { return c }

// registerSubscribers registers the flags of the scenarios whose
// subscribers hold a connection each: --transport and how they connect.
func (c *benchCommon) registerSubscribers(fs *flag.FlagSet) {
	fs.StringVar(&c.transport, "transport", c.transport, "how subscribers connect: sse (Server-Sent Events) or ws (WebSocket)")
	fs.StringVar(&c.sourceIPs, "source-ips", "", "local addresses to spread connections over, round-robin: a comma-separated list of IPs or ranges like 127.0.0.2-9 (default: 127.0.0.1 below 10000 connections to a loopback server, 127.0.0.2-9 from 10000; the system's choice for other servers)")
	fs.IntVar(&c.dialParallel, "dial-parallel", c.dialParallel, "connections being set up at once")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", c.connectTimeout, "time one connection has to be set up and get its first event")
	fs.DurationVar(&c.setupTimeout, "setup-timeout", c.setupTimeout, "time every subscriber has to connect before the scenario goes on without the rest")
}

// registerValueSize registers --value-size, the size of the values the
// scenario writes; check it with valueSizeCheck.
func registerValueSize(fs *flag.FlagSet, size *cliflag.Size) {
	*size = defaultValueSize
	fs.Var(size, "value-size", fmt.Sprintf("size of each value written (at least %d bytes)", minValueSize))
}

// valueSizeCheck checks a --value-size.
func valueSizeCheck(size cliflag.Size) check {
	return check{size < minValueSize, fmt.Sprintf("--value-size must be at least %d", minValueSize)}
}

// parse parses a scenario's flags, with the environment, and checks the
// common ones.
func (c *benchCommon) parse(fs *flag.FlagSet, args []string) error {
	if err := cliflag.Parse(fs, args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", cliflag.ErrBadFlag, err)
	}
	return nil
}

func (c *benchCommon) validate() error {
	switch {
	case c.transport != "sse" && c.transport != "ws":
		return fmt.Errorf("--transport must be sse or ws, not %q", c.transport)
	case c.spawn == (c.url != ""):
		return errors.New("give exactly one of --url and --spawn")
	case c.natsCluster && !c.spawn:
		return errors.New("--nats-cluster needs --spawn")
	case c.dialParallel <= 0:
		return errors.New("--dial-parallel must be positive")
	case c.connectTimeout <= 0 || c.setupTimeout <= 0:
		return errors.New("--connect-timeout and --setup-timeout must be positive")
	}
	if c.url != "" {
		u, err := url.Parse(c.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--url must be an http:// or https:// URL, not %q", c.url)
		}
	}
	if err := protocol.ValidateCollection(c.collection); err != nil {
		return fmt.Errorf("--collection: %w", err)
	}
	return nil
}

// check is one rule of a scenario's flags: bad says it is broken, msg
// says how.
type check struct {
	bad bool
	msg string
}

// checkFlags returns the first broken rule as an error of a bad flag;
// nil when none is.
func checkFlags(checks ...check) error {
	for _, c := range checks {
		if c.bad {
			return fmt.Errorf("%w: %s", cliflag.ErrBadFlag, c.msg)
		}
	}
	return nil
}

// viewOwner names the owner of view k of 'viewsync bench fanout --views'.
func viewOwner(k int) string { return "u" + strconv.Itoa(k) }

// viewWhere returns the filter of view k: its owner's records.
func viewWhere(k int) string { return `{"owner":"` + viewOwner(k) + `"}` }

// spreadCollection names collection k of a scenario spread over
// collections named after --collection.
func spreadCollection(name string, k int) string { return name + "-" + strconv.Itoa(k) }
