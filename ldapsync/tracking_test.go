package ldapsync_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/ldapsync"
)

// Switching change_tracking takes effect at the next pass: the stored watermark belongs to the
// other method, so that pass is a full one under the new method, and it says why.
func TestChangeTrackingSwitchTakesEffectAtOnce(t *testing.T) {
	e := smallEnv(t, nil)
	if sum := e.sync(false); sum.Mode != ldapsync.TrackSyncrepl {
		t.Fatalf("first pass mode %q, want syncrepl (auto, with syncprov)", sum.Mode)
	}
	for _, step := range []struct{ set, want string }{
		{ldapsync.TrackModifyTimestamp, ldapsync.TrackModifyTimestamp},
		{ldapsync.TrackSyncrepl, ldapsync.TrackSyncrepl},
	} {
		e.cfg.ChangeTracking = step.set
		var logs syncBuffer
		s, err := ldapsync.New(e.cfg, e.safe, e.store, ldapsync.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := s.SyncOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !sum.Full || sum.Mode != step.want {
			t.Errorf("first pass after change_tracking = %q: full %v, mode %q; want a full %s pass", step.set, sum.Full, sum.Mode, step.want)
		}
		if !strings.Contains(logs.String(), "change_tracking changed") {
			t.Errorf("the switch is not logged:\n%s", logs.String())
		}
		e.sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Title under `+step.set+`
`)
		sum, err = s.SyncOnce(context.Background())
		if err != nil || sum.Full || sum.Mode != step.want || sum.Updated != 1 {
			t.Fatalf("delta under %s: %+v, %v", step.set, sum, err)
		}
	}
	// auto keeps whichever method the last full pass chose.
	e.cfg.ChangeTracking = ldapsync.TrackAuto
	e.rebuild()
	if sum := e.sync(false); sum.Full || sum.Mode != ldapsync.TrackSyncrepl {
		t.Fatalf("auto after syncrepl: %+v", sum)
	}
}
