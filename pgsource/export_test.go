package pgsource

// StopWithoutConfirm makes Close stop s without confirming its last
// position to PostgreSQL, as a crash between a durable commit and its
// confirmation would.
func StopWithoutConfirm(s *Source) { s.noFinalConfirm.Store(true) }
