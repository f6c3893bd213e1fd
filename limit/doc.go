// Package limit keeps budgets: Rate, a token bucket per key (a principal,
// or a client address) for commits and calls per second; Conns, a count of
// concurrent requests per client address (Keep holds a hijacked stream's
// slot); and Memory, the bytes all reads of history may hold at once.
// Rate and Conns bound the keys they remember, so a flood of distinct keys
// cannot grow memory without bound.
//
//	commits := limit.NewRate(limit.RateOptions{PerSecond: 200})
//	if ok, retry := commits.Allow(key); !ok { … } // answer 429, Retry-After
package limit
