package ldapsync

// SetRejoinLimit sets how many newcomers a delta looks up, and returns a func that restores it.
func SetRejoinLimit(n int) func() {
	old := rejoinLimit
	rejoinLimit = n
	return func() { rejoinLimit = old }
}
