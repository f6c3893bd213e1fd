// Package bench is the load tool of 'viewsync bench': it drives a viewsync
// server (one it spawns, 'viewsync serve' on a fresh data directory, or any
// at a URL) with many live subscribers, writers or pollers, and reports what
// they see and what it costs, against a raw broadcaster as the machine's
// ceiling when asked. Command runs it as a subcommand of a binary.
package bench

import (
	"context"
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
	if run, ok := scenarios[args[0]]; ok {
		return run(ctx, cmd, args[1:], stdout, stderr)
	}
	switch args[0] {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	fmt.Fprintf(stderr, "viewsync bench: unknown scenario %q\n\n%s", args[0], benchUsage)
	return cliflag.ErrUsage
}

// scenarios run the scenarios of 'viewsync bench' and its hidden
// processes, by name.
var scenarios = map[string]func(ctx context.Context, cmd *Command, args []string, stdout, stderr io.Writer) error{
	"fanout":  benchFanout,
	"idle":    benchIdle,
	"writes":  benchWrites,
	"catchup": benchCatchup,
	"poll":    benchPoll,
	"history": benchHistory,
	// Hidden: a share of fanout's or idle's subscribers, and the raw
	// broadcaster of --baseline.
	"loader":          benchLoader,
	"baseline-server": benchBaselineServer,
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
