package ldapsync_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

func (e *env) watermark() []byte {
	e.t.Helper()
	w, err := e.store.Watermark(context.Background(), ldapsync.Source)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// Invariant 4 (docs/architecture.md): a slapd that stops at 500 entries must not make 100 users disappear.
func TestSizeLimitedReadDeletesNothing(t *testing.T) {
	ldif := testenv.SampleLDIF(t, sampledata.Options{Users: 600, Groups: 5, Seed: 7})
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{ldif}, DefaultSizeLimit: true}, nil)
	e.sync(true) // as the rootdn: no limit
	if n := e.count(scim.UserType); n != 600 {
		t.Fatalf("%d users after the rootdn's sync, want 600", n)
	}
	wm := e.watermark()

	e.cfg.BindDN, e.cfg.BindPassword = e.sl.ReaderDN, confval.NewSecret(e.sl.ReaderPassword)
	e.rebuild()
	sum, err := e.s.SyncFull(context.Background())
	if err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("size-limited full pass: err %v, want a size limit error", err)
	}
	if sum.Partial == "" || sum.Deleted != 0 || sum.Held != 0 {
		t.Fatalf("summary %+v: want partial, nothing deleted or held", sum)
	}
	if n := e.count(scim.UserType); n != 600 {
		t.Fatalf("%d users after a size-limited pass, want 600", n)
	}
	if !bytes.Equal(e.watermark(), wm) {
		t.Fatal("a partial pass moved the watermark")
	}
}

// A connection that drops in the middle of a full read deletes nothing and keeps the watermark.
func TestDroppedConnectionDeletesNothing(t *testing.T) {
	ldif := testenv.SampleLDIF(t, sampledata.Options{Users: 3000, Groups: 10, Seed: 8})
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{ldif}}, nil)
	e.sync(true)
	users, groups, wm := e.count(scim.UserType), e.count(scim.GroupType), e.watermark()

	killed := false
	e.rebuildWith(ldapsync.Options{Progress: func(stage string, n int) {
		if stage == string(scim.UserType) && n >= 1000 && !killed {
			killed = true
			e.sl.Kill()
		}
	}})
	sum, err := e.s.SyncFull(context.Background())
	if !killed {
		t.Fatal("the test never killed slapd")
	}
	if err == nil {
		t.Fatalf("pass over a dropped connection succeeded: %+v", sum)
	}
	if sum.Deleted != 0 || e.count(scim.UserType) != users || e.count(scim.GroupType) != groups {
		t.Fatalf("dropped connection deleted: %+v", sum)
	}
	if !bytes.Equal(e.watermark(), wm) {
		t.Fatal("a failed pass moved the watermark")
	}
	// The next pass reconnects by itself.
	e.sl.Restart(t)
	e.sync(false)
}

func TestThresholdHoldsDeletionsUntilApproved(t *testing.T) {
	e := smallEnv(t, func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 1, 100 })
	e.sync(false)
	ctx := context.Background()
	e.sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: delete

dn: uid=carl,ou=people,dc=example,dc=com
changetype: delete
`)
	sum := e.sync(false)
	if sum.Held != 2 || sum.Deleted != 0 || !e.hasUser("ann") || !e.hasUser("carl") {
		t.Fatalf("two deletions over a limit of one: %+v", sum)
	}
	holds, err := e.store.Holds(ctx)
	if err != nil || len(holds) != 2 {
		t.Fatalf("holds %v, %v", holds, err)
	}
	// Later passes keep the holds (the syncrepl cookie has moved past those deletes).
	e.sync(false)
	if holds, _ := e.store.Holds(ctx); len(holds) != 2 {
		t.Fatalf("holds after an idle delta: %d", len(holds))
	}
	// A full pass sees the same two missing and holds them again.
	if sum := e.sync(true); sum.Held != 2 || sum.Deleted != 0 {
		t.Fatalf("full pass: %+v", sum)
	}
	res, err := ldapsync.ApproveHolds(ctx, e.store, nil)
	if err != nil || res.Deleted != 2 {
		t.Fatalf("approve: %+v, %v", res, err)
	}
	if e.hasUser("ann") || e.hasUser("carl") {
		t.Fatal("approved deletions not applied")
	}
	if got := memberNames(e.group("sales")); len(got) != 0 {
		t.Fatalf("approved deletion of carl left him in sales: %v", got)
	}
	if holds, _ := e.store.Holds(ctx); len(holds) != 0 {
		t.Fatalf("%d holds left after approving all", len(holds))
	}
	if _, err := ldapsync.ApproveHolds(ctx, e.store, []string{"no-such-id"}); err == nil {
		t.Fatal("approving an id that is not held succeeded")
	}
}

func TestThresholdHoldsMassDeactivation(t *testing.T) {
	e := smallEnv(t, func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 1, 100 })
	e.sync(false)
	e.sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
add: pwdAccountLockedTime
pwdAccountLockedTime: 000001010000Z
-
replace: title
title: Locked Engineer

dn: uid=bob,ou=people,dc=example,dc=com
changetype: modify
add: pwdAccountLockedTime
pwdAccountLockedTime: 000001010000Z
`)
	sum := e.sync(false)
	if sum.Held != 2 || sum.Deactivated != 0 {
		t.Fatalf("two deactivations over a limit of one: %+v", sum)
	}
	ann := e.user("ann")
	if !ann.Active() || ann.String("title") != "Locked Engineer" {
		t.Fatalf("held deactivation: active=%v title=%q; want still active with the other change applied", ann.Active(), ann.String("title"))
	}
	// A full pass sees the same deactivations and keeps holding them.
	if sum := e.sync(true); sum.Held != 2 || !e.user("ann").Active() {
		t.Fatalf("full pass after held deactivations: %+v, ann active %v", sum, e.user("ann").Active())
	}
	res, err := ldapsync.ApproveHolds(context.Background(), e.store, []string{ann.ID})
	if err != nil || res.Deactivated != 1 {
		t.Fatalf("approve one: %+v, %v", res, err)
	}
	if e.user("ann").Active() || !e.user("bob").Active() {
		t.Fatal("approving ann should deactivate ann only")
	}
	if holds, _ := e.store.Holds(context.Background()); len(holds) != 1 {
		t.Fatalf("%d holds left, want bob's", len(holds))
	}
}

var _ = errors.Is

// A base DN that no longer exists (an OU renamed or deleted under the config's feet) fails the
// pass, names the nearest entry that exists, and deletes nothing.
func TestMissingBaseDNDeletesNothing(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(true)
	users, wm := e.count(scim.UserType), e.watermark()
	e.cfg.Users.BaseDN = "ou=gone,dc=example,dc=com"
	e.rebuild()
	sum, err := e.s.SyncFull(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"ou=gone,dc=example,dc=com"`) ||
		!strings.Contains(err.Error(), `nearest entry that exists is "dc=example,dc=com"`) {
		t.Fatalf("full pass under a missing base: %+v, %v", sum, err)
	}
	if sum.Deleted != 0 || e.count(scim.UserType) != users || !bytes.Equal(e.watermark(), wm) {
		t.Fatalf("a pass under a missing base changed the cache: %+v", sum)
	}
}

// Wrong credentials fail the pass with where the password comes from, and never the password.
func TestWrongPasswordSaysWhereItComesFrom(t *testing.T) {
	e := smallEnv(t, nil)
	e.cfg.BindPassword = confval.NewSecret("not-the-password-42")
	e.rebuild()
	_, err := e.s.SyncOnce(context.Background())
	if err == nil || !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) ||
		!strings.Contains(err.Error(), "ldap.bind_password_file") || strings.Contains(err.Error(), "not-the-password-42") {
		t.Fatalf("sync with a wrong password: %v", err)
	}
	if n := e.count(scim.UserType); n != 0 {
		t.Fatalf("%d users cached by a pass that could not bind", n)
	}
}
