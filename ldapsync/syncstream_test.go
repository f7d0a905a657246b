package ldapsync

import (
	"reflect"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/google/uuid"
)

// syncResp is one response of a syncrepl search, as go-ldap hands it over.
type syncResp struct {
	e        *ldap.Entry
	controls []ldap.Control
}

func (r syncResp) Entry() *ldap.Entry       { return r.e }
func (r syncResp) Referral() string         { return "" }
func (r syncResp) Controls() []ldap.Control { return r.controls }
func (r syncResp) Err() error               { return nil }
func (r syncResp) Next() bool               { return false }

func syncEntry(dn string, state ldap.ControlSyncStateState, id uuid.UUID, cookie string) syncResp {
	return syncResp{e: ldap.NewEntry(dn, nil), controls: []ldap.Control{
		&ldap.ControlSyncState{State: state, EntryUUID: id, Cookie: []byte(cookie)}}}
}

func syncInfo(info ldap.ControlSyncInfo) syncResp { return syncResp{controls: []ldap.Control{&info}} }

func syncDone(cookie string, refreshDeletes bool) syncResp {
	return syncResp{controls: []ldap.Control{&ldap.ControlSyncDone{Cookie: []byte(cookie), RefreshDeletes: refreshDeletes}}}
}

// A refresh with deletions: changed entries come back, deleted UUIDs and the newest cookie
// are kept, and an empty cookie keeps the one before.
func TestSyncStreamRefreshDeletes(t *testing.T) {
	u1, u2, u3 := uuid.New(), uuid.New(), uuid.New()
	ss := newSyncStream()
	var changed []string
	for _, r := range []syncResp{
		syncEntry("uid=a", ldap.SyncStateAdd, u1, "c1"),
		syncEntry("uid=b", ldap.SyncStateModify, u2, ""),
		syncEntry("uid=gone", ldap.SyncStateDelete, u3, "c2"),
		syncInfo(ldap.ControlSyncInfo{SyncIdSet: &ldap.ControlSyncInfoSyncIdSet{RefreshDeletes: true, SyncUUIDs: []uuid.UUID{u1}}}),
		{e: ldap.NewEntry("uid=nostate", nil)},
		syncDone("", true),
	} {
		if e := ss.take(r); e != nil {
			changed = append(changed, e.DN)
		}
	}
	if want := []string{"uid=a", "uid=b", "uid=nostate"}; !reflect.DeepEqual(changed, want) {
		t.Errorf("changed %v, want %v", changed, want)
	}
	if want := []string{u3.String(), u1.String()}; !reflect.DeepEqual(ss.deleted, want) {
		t.Errorf("deleted %v, want %v", ss.deleted, want)
	}
	if string(ss.cookie) != "c2" || !ss.done || ss.presentOn {
		t.Errorf("cookie %q, done %v, present phase %v", ss.cookie, ss.done, ss.presentOn)
	}
}

// A present phase lists what still exists; a Sync Done with refreshDeletes ends it as a
// delete phase after all; a search without Sync Done is not done.
func TestSyncStreamPresentPhase(t *testing.T) {
	u1, u2 := uuid.New(), uuid.New()
	ss := newSyncStream()
	ss.take(syncInfo(ldap.ControlSyncInfo{RefreshPresent: &ldap.ControlSyncInfoRefreshPresent{Cookie: []byte("p1")}}))
	ss.take(syncInfo(ldap.ControlSyncInfo{SyncIdSet: &ldap.ControlSyncInfoSyncIdSet{SyncUUIDs: []uuid.UUID{u1}}}))
	if e := ss.take(syncEntry("uid=b", ldap.SyncStatePresent, u2, "")); e != nil {
		t.Errorf("a present entry is returned as changed: %s", e.DN)
	}
	if ss.done || !ss.presentOn || len(ss.present) != 2 || string(ss.cookie) != "p1" {
		t.Fatalf("after the present phase: %+v", ss)
	}
	ss.take(syncInfo(ldap.ControlSyncInfo{NewCookie: &ldap.ControlSyncInfoNewCookie{Cookie: []byte("p2")}}))
	ss.take(syncDone("p3", false))
	if !ss.done || !ss.presentOn || string(ss.cookie) != "p3" {
		t.Errorf("Sync Done without refreshDeletes: %+v", ss)
	}
	ss2 := newSyncStream()
	ss2.take(syncInfo(ldap.ControlSyncInfo{RefreshPresent: &ldap.ControlSyncInfoRefreshPresent{}}))
	ss2.take(syncDone("", true))
	if ss2.presentOn || ss2.cookie != nil {
		t.Errorf("Sync Done with refreshDeletes: %+v", ss2)
	}
}
