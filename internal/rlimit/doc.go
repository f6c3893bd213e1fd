// Package rlimit raises the limit of open files of the process, for the
// server and the load tool of the viewsync binary, which hold many
// connections.
package rlimit
