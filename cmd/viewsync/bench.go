package main

import (
	"context"
	"io"
	"os"

	benchcmd "github.com/viewsync/viewsync/internal/bench"
)

// bench runs 'viewsync bench', the load tool of internal/bench. It spawns
// this executable again: as 'viewsync serve' for --spawn, and as its
// hidden 'bench loader' and 'bench baseline-server' processes, which read
// their commands on stdin.
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := &benchcmd.Command{Executable: os.Executable, Stdin: os.Stdin}
	return cmd.Run(ctx, args, stdout, stderr)
}
