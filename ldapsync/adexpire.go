package ldapsync

import (
	"strconv"
	"time"
)

// accountExpires is a Windows FILETIME: 100 ns intervals since 1601-01-01 UTC. 0 and
// 0x7FFFFFFFFFFFFFFF mean "never".
const (
	fileTimeNever = 0x7FFFFFFFFFFFFFFF
	// fileTimeUnixEpoch is 1970-01-01 in FILETIME units.
	fileTimeUnixEpoch = 116444736000000000
)

// adExpired reports whether the entry's accountExpires lies before now.
func adExpired(e attrGetter, now time.Time) bool {
	v := e.Get("accountExpires")
	if len(v) == 0 {
		return false
	}
	ft, err := strconv.ParseInt(str(v[0]), 10, 64)
	if err != nil || ft <= 0 || ft == fileTimeNever {
		return false
	}
	return ft < now.UnixNano()/100+fileTimeUnixEpoch
}

// adExpiryDigest folds the expiry state into a user's source digest: an account that expires
// without any change of its entry must not be skipped as unchanged by the next full pass.
// (Delta passes do not see an expiry happen; the next full pass does.)
func adExpiryDigest(d [16]byte, e attrGetter, now time.Time) [16]byte {
	if adExpired(e, now) {
		d[15] ^= 1
	}
	return d
}
