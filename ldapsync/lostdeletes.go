package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// A deletion that slapd's syncprov no longer knows of. slapd keeps its contextCSN in memory and
// writes it back at checkpoints and on a clean shutdown; its session log lives in memory only.
// Killed, it restarts with the contextCSN of its last checkpoint and a session log that starts
// there. An entry deleted between that checkpoint and the crash leaves nothing syncprov can
// report: no entry past the snapshot (pastSnapshot reads those), and no session log record.
// When the stored cookie is older than the restarted server's contextCSN the refresh runs a
// present phase, which finds the deletion; when it is not (the last pass ran right after a
// checkpoint or a clean restart), the deletion is missed by this delta and every later one.
// The accesslog still has it. checkLoggedDeletions looks there, and a deletion the log shows
// but the refresh did not report, of an entry the cache holds, makes the pass a full one: a
// complete read is the only signal that may delete (invariant 4). A rename (modrdn) counts too:
// moved out of the users' or groups' base (offboarding into ou=former), an entry is gone for
// us, and moved within it, it is read past the snapshot and so skipped here.

// checkLoggedDeletions returns errRefreshRequired when the accesslog shows a successful delete
// or rename, after the previous cookies, of an entry the cache holds and this pass neither read
// nor marked for deletion, and either the refresh of its type covered the operation's CSN (so it
// should have reported it) or the server's contextCSN is behind it (it restarted after a crash).
// One after the refresh's snapshot while the server is not behind it is the next delta's.
// Without a readable accesslog that covers the previous cookies, nothing is checked.
func (p *pass) checkLoggedDeletions(ctx context.Context, prev, next *watermark) error {
	since, ok := olderCSN(prev.UsersCookie, prev.GroupsCookie)
	if !ok {
		return nil
	}
	log, why := p.openAccessLog(ctx, []byte("csn="+since))
	if log == nil {
		p.s.log.Debug("deletions are not checked against the accesslog", "why", why)
		return nil
	}
	c := ldap.EscapeFilter(since)
	res, err := p.conn.Search(ldap.NewSearchRequest(log.base, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(&(|(objectClass=auditDelete)(objectClass=auditModRDN))(reqResult=0)(entryCSN>="+c+")(!(entryCSN="+c+")))",
		[]string{"reqEntryUUID", "reqDN", "reqType", "entryCSN"}, nil))
	if err != nil {
		return fmt.Errorf("reading the deletions and renames the accesslog %s holds: %w", log.base, err)
	}
	server := ""
	for _, rec := range res.Entries {
		id := strings.ToLower(rec.GetAttributeValue("reqEntryUUID"))
		csn := rec.GetAttributeValue("entryCSN")
		if id == "" || csn == "" || p.core.Dels.Marked(id) || p.wasRead(id) {
			continue
		}
		ref, err := p.s.store.Ref(ctx, id)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		from, upTo := prev.UsersCookie, next.UsersCookie
		if ref.Type == scim.GroupType {
			from, upTo = prev.GroupsCookie, next.GroupsCookie
		}
		if f, ok := cookieCSN(from); ok && csn <= f {
			continue // before this type's cookie: an earlier pass's business
		}
		n, _ := cookieCSN(upTo)
		if csn > n {
			// After the refresh's snapshot: the next refresh reports it, unless the server's
			// contextCSN is behind it.
			if server == "" {
				cookie, err := p.s.syncCookie(ctx, p.conn)
				if err != nil {
					return err
				}
				if server, ok = cookieCSN(cookie); !ok {
					return nil // several CSNs: not a single server
				}
			}
			if csn <= server {
				continue
			}
		}
		return fmt.Errorf("%w: the accesslog shows a %s of %s (%s) at %s, which the server's syncrepl refresh did not report (did slapd restart after a crash?)",
			errRefreshRequired, rec.GetAttributeValue("reqType"), rec.GetAttributeValue("reqDN"), id, csn)
	}
	return nil
}

// olderCSN returns the older CSN of two cookies, each of a single CSN.
func olderCSN(a, b []byte) (string, bool) {
	ca, okA := cookieCSN(a)
	cb, okB := cookieCSN(b)
	if !okA || !okB {
		return "", false
	}
	return min(ca, cb), true
}
