// Package bench is the load tool of 'viewsync bench': it drives a viewsync
// server (one it spawns, 'viewsync serve' on a fresh data directory, or any
// at a URL) with many live subscribers, writers or pollers, and reports what
// they see and what it costs, against a raw broadcaster as the machine's
// ceiling when asked. Command runs it as a subcommand of a binary.
package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/viewsync/viewsync/internal/cliflag"
)

const benchUsage = `Usage: viewsync bench <scenario> [flags]

Drives a viewsync server with many live subscribers, writers or pollers and
reports what they see and what it costs. The server is one the tool starts itself (--spawn:
'viewsync serve' on a fresh data directory, whose CPU time and memory it
then reads from /proc) or any server at --url.

Scenarios:
  fanout   N subscribers, one writer at R commits/s: deliveries/s, commit to
           receipt latency, missing and duplicated commits, server CPU per
           delivery
  idle     N idle subscriptions: server memory per connection
  writes   C concurrent writers PUTting distinct records: durable commits/s,
           commit latency, server CPU per commit
  catchup  K commits behind: time for a client at the start to be current by
           paging through /changes (or via a compacted catch-up when the
           spawned server keeps a short log: --retain-commits)
  poll     N keep-alive clients polling the version with If-None-Match:
           requests/s, latency, server CPU per request
  collections
           N small collections, one subscriber each, commits to random
           ones: memory and data per collection, /metrics size, connect
           time, commit to receipt latency; --nats-cluster on a spawned
           three-node NATS cluster
  visibility
           a three-node NATS cluster (spawned): commit on node 0 → receipt
           on each node's subscribers at a few commit rates, per node
  pg       PostgreSQL as a source (--spawn): initial sync time and memory
           of a large table, update to receipt latency at paced row
           changes/s, maximum row changes/s
  history  reads of a long history (1000 commits of 200 KiB): the server
           memory that 1 and 3 clients paging /changes, and 6 and 40
           subscribers resuming from version 0, take at their peak

Run 'viewsync bench <scenario> --help' for its flags. Every flag can also be
set by an environment variable: VIEWSYNC_ + the flag name in upper case with
'-' as '_' (VIEWSYNC_SUBSCRIBERS=1000). A spawned server takes its own
settings from the environment the same way (VIEWSYNC_BUFFER_BYTES=1MiB).
`

// Command is 'viewsync bench' as a subcommand of a binary. Its fields name
// what it needs of that binary.
type Command struct {
	// Executable returns the program spawned as 'EXE serve' for --spawn,
	// and as the hidden 'EXE bench loader' and 'EXE bench baseline-server',
	// which must run this Command; nil means os.Executable.
	Executable func() (string, error)
	// Stdin is where a loader process reads its parent's commands; nil
	// means os.Stdin.
	Stdin io.Reader
}

// Run runs 'viewsync bench' with args, the scenario and its flags: the
// report goes to stdout, progress to stderr. An error of usage, whose
// message was printed or is the error's, wraps cliflag.ErrUsage or
// cliflag.ErrBadFlag; --help returns flag.ErrHelp.
func (cmd *Command) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return cliflag.ErrUsage
	}
	switch name := args[0]; name {
	case "loader": // hidden: a share of fanout's or idle's subscribers
		return runLoader(ctx, cmd, args[1:], stdout, stderr)
	case "baseline-server": // hidden: the raw broadcaster of --baseline
		return baselineServer(ctx, args[1:], stdout, stderr)
	case "nats-node": // hidden: a NATS server of --nats-cluster
		return natsNode(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	default:
		if sc, ok := scenarios[name]; ok {
			return cmd.run(ctx, name, sc, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "viewsync bench: unknown scenario %q\n\n%s", args[0], benchUsage)
	return cliflag.ErrUsage
}

// scenario is the configuration of a scenario: the flags every scenario
// has (its benchCommon) and its own.
type scenario interface {
	common() *benchCommon
	// register registers the scenario's own flags.
	register(fs *flag.FlagSet)
	// check checks them once parsed.
	check(fs *flag.FlagSet) error
	run(ctx context.Context, stdout, stderr io.Writer) error
}

// scenarioSpec is a scenario's help, what its --collection is, and its
// configuration at the defaults.
type scenarioSpec struct {
	usage, collection string
	config            func() scenario
}

// scenarios are the scenarios of 'viewsync bench', by name.
var scenarios = map[string]scenarioSpec{
	"fanout":      {fanoutUsage, "the collection subscribed to (and written to)", func() scenario { return &fanoutConfig{} }},
	"idle":        {idleUsage, "the collection subscribed to (and written to)", func() scenario { return &idleConfig{} }},
	"writes":      {writesUsage, "the collection written to; with --collections K > 1, the collections NAME-0 … NAME-(K-1)", func() scenario { return &writesConfig{} }},
	"catchup":     {catchupUsage, "the collection written to and read", func() scenario { return &catchupConfig{} }},
	"poll":        {pollUsage, "the collection whose version is polled", func() scenario { return &pollConfig{} }},
	"collections": {collectionsUsage, "the prefix of the collections NAME-0 … NAME-(N-1) written and followed", func() scenario { return &collectionsConfig{} }},
	"visibility":  {visibilityUsage, "the collection written to node 0 and followed on every node", func() scenario { return &visibilityConfig{} }},
	"pg":          {pgUsage, "the collection fed from the live table (the initial sync's: COLLECTION-sync)", func() scenario { return &pgConfig{} }},
	"history": {historyUsage, "the collection of the long history, read by get1, get3 and sse6 (sse40 reads COLLECTION-restart)",
		func() scenario { return &historyConfig{valueBytes: 200 << 10, restartValueBytes: 20 << 10} }},
}

// run runs the scenario sc, named name, with args, its flags.
func (cmd *Command) run(ctx context.Context, name string, sc scenarioSpec, args []string, stdout, stderr io.Writer) error {
	config := sc.config()
	c := config.common()
	fs := cmd.flags(name, sc.usage, sc.collection, c, stderr)
	config.register(fs)
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if err := config.check(fs); err != nil {
		return err
	}
	return config.run(ctx, stdout, stderr)
}

// executable returns the program to spawn.
func (cmd *Command) executable() (string, error) {
	if cmd.Executable != nil {
		return cmd.Executable()
	}
	return os.Executable()
}

// stdin returns where a loader reads its commands.
func (cmd *Command) stdin() io.Reader {
	if cmd.Stdin != nil {
		return cmd.Stdin
	}
	return os.Stdin
}
