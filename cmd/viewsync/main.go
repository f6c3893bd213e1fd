// Command viewsync runs the viewsync server and its tools.
//
//	viewsync serve     run the server (HTTP API, metrics) on an embedded store
//	viewsync bench     load a server with many live subscribers and measure it
//	viewsync token     print a signed access token for development and tests
//	viewsync version   print the version
//
// Every flag of a subcommand can also be set by an environment variable:
// VIEWSYNC_ followed by the flag's name in upper case with '-' as '_'
// (--retain-commits → VIEWSYNC_RETAIN_COMMITS). A flag on the command line
// wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/viewsync/viewsync/internal/cliflag"
)

const usage = `viewsync keeps many clients' views of shared data in sync, live.

Usage:
  viewsync <command> [flags]

Commands:
  serve     run the server: HTTP API v1, health and metrics, on an embedded durable store
  bench     load a server with many live subscribers and measure it (fanout, idle, writes, catchup, poll)
  token     print a signed access token (JWT) for development, tests and scripts
  health    exit 0 when the server on this machine is ready (for container health checks)
  version   print the version and exit

Run 'viewsync <command> --help' for the flags of a command. Every flag can
also be set by an environment variable: VIEWSYNC_ + the flag name in upper
case with '-' as '_' (for example VIEWSYNC_ADDR=0.0.0.0:8080).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "bench":
		err = bench(ctx, args[1:], stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "health":
		err = health(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "viewsync: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, cliflag.ErrUsage):
		return 2
	case errors.Is(err, cliflag.ErrBadFlag):
		fmt.Fprintf(stderr, "viewsync %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "viewsync %s: %v\n", args[0], err)
		return 1
	}
}
