package ldapsync

// SetRangeFault makes the range-retrieval request for (dn, low) fail when fn returns an error
// (tests: "a later range request fails").
func SetRangeFault(s *Syncer, fn func(dn string, low int) error) { s.rangeFault = fn }
