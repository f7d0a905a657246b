package ldapsync

import "github.com/go-ldap/ldap/v3"

// syncStream reads the control stream of one RFC 4533 refreshOnly search (syncrepl explains
// what slapd's syncprov sends). It knows nothing of the pass or the cache: it collects the
// newest cookie, the UUIDs reported deleted or present, whether a present phase ran and
// whether the refresh completed, and hands back each changed entry for the pass to apply.
type syncStream struct {
	cookie    []byte              // the newest cookie the server sent; nil: none
	present   map[string]struct{} // UUIDs a present phase listed
	presentOn bool                // the server ran a present phase
	deleted   []string            // UUIDs the server reported deleted
	done      bool                // a Sync Done control ended the refresh
}

func newSyncStream() *syncStream {
	return &syncStream{present: map[string]struct{}{}}
}

// setCookie keeps c if the server sent one: an empty cookie means nothing changed.
func (ss *syncStream) setCookie(c []byte) {
	if len(c) > 0 {
		ss.cookie = c
	}
}

// take reads one response of the search and returns the entry it carries when that entry was
// added or changed, else nil.
func (ss *syncStream) take(resp ldap.Response) *ldap.Entry {
	for _, c := range resp.Controls() {
		switch c := c.(type) {
		case *ldap.ControlSyncInfo:
			ss.takeInfo(c)
		case *ldap.ControlSyncDone:
			ss.setCookie(c.Cookie)
			ss.done = true
			if c.RefreshDeletes {
				ss.presentOn = false
			}
		}
	}
	e := resp.Entry()
	if e == nil {
		return nil
	}
	st, _ := ldap.FindControl(resp.Controls(), ldap.ControlTypeSyncState).(*ldap.ControlSyncState)
	if st == nil {
		return e
	}
	ss.setCookie(st.Cookie)
	id := st.EntryUUID.String()
	switch st.State {
	case ldap.SyncStateDelete:
		ss.deleted = append(ss.deleted, id)
	case ldap.SyncStatePresent:
		ss.presentOn = true
		ss.present[id] = struct{}{}
	default:
		return e
	}
	return nil
}

// takeInfo reads a Sync Info message: a new cookie, the end of a refresh phase, or a set of
// UUIDs deleted (refreshDeletes) or present.
func (ss *syncStream) takeInfo(c *ldap.ControlSyncInfo) {
	switch {
	case c.NewCookie != nil:
		ss.setCookie(c.NewCookie.Cookie)
	case c.RefreshDelete != nil:
		ss.setCookie(c.RefreshDelete.Cookie)
	case c.RefreshPresent != nil:
		ss.setCookie(c.RefreshPresent.Cookie)
		ss.presentOn = true
	case c.SyncIdSet != nil:
		ss.setCookie(c.SyncIdSet.Cookie)
		for _, u := range c.SyncIdSet.SyncUUIDs {
			if c.SyncIdSet.RefreshDeletes {
				ss.deleted = append(ss.deleted, u.String())
			} else {
				ss.presentOn = true
				ss.present[u.String()] = struct{}{}
			}
		}
	}
}
