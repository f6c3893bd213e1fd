// Package limit keeps per-key budgets: Rate, a token bucket per key (a
// principal, or a client address) for commits and calls per second, and
// Conns, a count of concurrent requests per client address. Both bound the
// number of keys they remember, so a flood of distinct keys cannot grow
// memory without bound.
package limit
