package testenv

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// CacheState is what a cache directory holds, read while no process has it open: every
// resource's meta.version by id, the whole change journal and the LDAP watermark. Crash tests
// compare it with a reference sync and with the directory.
type CacheState struct {
	Versions  map[string]string // id → meta.version, users and groups
	Journal   []cache.JournalRecord
	Watermark []byte // nil when no pass has completed
}

// ReadCache opens the cache in dir, reads its state and closes it. It fails the test when the
// cache does not open (another process holds it, or it is corrupt).
func ReadCache(t testing.TB, dir string) CacheState {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatalf("testenv: opening cache %s: %v", dir, err)
	}
	defer st.Close()
	cs, err := readCache(context.Background(), st)
	if err != nil {
		t.Fatalf("testenv: reading cache %s: %v", dir, err)
	}
	return cs
}

func readCache(ctx context.Context, st *cache.Store) (CacheState, error) {
	cs := CacheState{Versions: map[string]string{}}
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		err := st.ForEachID(ctx, typ, func(id string) error {
			r, err := st.Get(ctx, typ, id)
			if err != nil {
				return err
			}
			cs.Versions[id] = r.Meta.Version
			return nil
		})
		if err != nil {
			return cs, err
		}
	}
	var err error
	if cs.Journal, err = st.Journal(ctx, 0, 1<<30); err != nil {
		return cs, err
	}
	cs.Watermark, err = st.Watermark(ctx, ldapsync.Source)
	return cs, err
}

// JournalGaps returns an error when the journal's sequence numbers are not 1..n without gaps
// or repeats: a crash that lost or doubled a record.
func (cs CacheState) JournalGaps() error {
	for i, r := range cs.Journal {
		if r.Seq != uint64(i+1) {
			return fmt.Errorf("journal seq %d at position %d: gap or duplicate", r.Seq, i)
		}
	}
	return nil
}

// Diff counts the resources of want that cs lacks or holds at another version (missing) and
// those cs holds that want does not (extra).
func (cs CacheState) Diff(want map[string]string) (missing, extra int) {
	for id, v := range want {
		if cs.Versions[id] != v {
			missing++
		}
	}
	for id := range cs.Versions {
		if _, ok := want[id]; !ok {
			extra++
		}
	}
	return missing, extra
}
