package main

import (
	"flag"

	"github.com/viewsync/viewsync/internal/cliflag"
)

// The flag helpers live in internal/cliflag, which the bench tool shares;
// the commands of this package use them by these names.

// errUsage reports bad command-line use; the message was already printed.
var errUsage = cliflag.ErrUsage

// errBadFlag reports a flag or environment value that parsed but is not
// allowed; the process exits 2, like for other usage errors.
var errBadFlag = cliflag.ErrBadFlag

// parseFlags parses args, then fills every flag not given on the command
// line from its environment variable.
func parseFlags(fs *flag.FlagSet, args []string) error { return cliflag.Parse(fs, args) }

// flagGiven reports whether the flag was set on the command line or by its
// environment variable.
func flagGiven(fs *flag.FlagSet, name string) bool { return cliflag.Given(fs, name) }

// byteSize is a flag value for a size in bytes: 1048576, 512KiB, 1MiB, 1MB.
type byteSize = cliflag.Size
