package cache

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// oldCacheBatch is the batch that wrote testdata/cache-before-member-keys.tar.gz: the cache
// package of commit b59f861 (groups with their members inside their value) applied it to an
// empty directory and closed the store. 3,000 users, four small groups (one of them nested)
// and an all-staff group of every user, whose 270 KB value lives in Badger's value log.
func oldCacheBatch() Batch {
	uid := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	gid := func(i int) string { return fmt.Sprintf("11111111-0000-4000-8000-%012d", i) }
	b := Batch{Source: "ldap", Pass: "old", Watermark: []byte("wm-old")}
	const n = 3000
	for i := 0; i < n; i++ {
		b.Upserts = append(b.Upserts, &scim.Resource{Type: scim.UserType, ID: uid(i), DN: fmt.Sprintf("uid=u%d,ou=People,dc=example,dc=com", i),
			Attributes: map[string]any{"userName": fmt.Sprintf("u%d", i), "displayName": fmt.Sprintf("User %d", i), "active": true}})
	}
	for g := 0; g < 5; g++ {
		r := &scim.Resource{Type: scim.GroupType, ID: gid(g), DN: fmt.Sprintf("cn=g%d,ou=Groups,dc=example,dc=com", g),
			Attributes: map[string]any{"displayName": fmt.Sprintf("Group %d", g)}}
		size := 10 * (g + 1)
		if g == 4 {
			size = n
		}
		for i := 0; i < size; i++ {
			r.Members = append(r.Members, scim.Member{Value: uid(i), Type: scim.UserType, Display: fmt.Sprintf("User %d", i)})
		}
		if g == 3 {
			r.Members = append([]scim.Member{{Value: gid(0), Type: scim.GroupType, Display: "Group 0"}}, r.Members...)
		}
		b.Upserts = append(b.Upserts, r)
	}
	return b
}

// TestOpenMigratesAnOldCache opens a cache written by the ldapscim before per-member keys.
// Open must move every group's members into member keys (logging it with counts), keep
// content, times and the journal, and leave groups that the same directory data, applied
// again, finds unchanged: no journal record, nothing pushed again.
func TestOpenMigratesAnOldCache(t *testing.T) {
	dir := t.TempDir()
	untar(t, "testdata/cache-before-member-keys.tar.gz", dir)
	var logs bytes.Buffer
	s, err := Open(Options{Dir: dir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if !strings.Contains(logs.String(), "group members moved into keys of their own") ||
		!strings.Contains(logs.String(), "groups=5") || !strings.Contains(logs.String(), "members=3101") {
		t.Fatalf("no upgrade line with counts in the log:\n%s", logs.String())
	}
	head := mustJournalHead(t, s)
	if head != 3005 {
		t.Fatalf("journal head %d after the upgrade, want 3005", head)
	}
	want := oldCacheBatch()
	for _, r := range want.Upserts[3000:] {
		got, err := s.Get(ctx, scim.GroupType, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantMembers := slices.SortedFunc(slices.Values(r.Members), func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
		if !slices.Equal(got.Members, wantMembers) || got.DisplayName() != r.DisplayName() {
			t.Fatalf("group %s after the upgrade: %d members, displayName %q", r.ID, len(got.Members), got.DisplayName())
		}
		if !got.Meta.Created.Equal(got.Meta.LastModified) || got.Meta.Created.IsZero() {
			t.Fatalf("group %s: times changed: %+v", r.ID, got.Meta)
		}
		checkGroupMembers(t, s, r.ID)
	}
	if refs, _ := s.GroupsOf(ctx, want.Upserts[0].ID); len(refs) != 5 {
		t.Fatalf("user 0 is in %d groups after the upgrade, want 5", len(refs))
	}
	checkConsistent(t, s)

	res := mustApply(t, s, want)
	if res != (Result{Unchanged: 3005}) || mustJournalHead(t, s) != head {
		t.Fatalf("re-applying the old data after the upgrade: %+v, journal head %d", res, mustJournalHead(t, s))
	}

	// A second Open finds nothing left to do.
	s.Close()
	logs.Reset()
	s2, err := Open(Options{Dir: dir, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if strings.Contains(logs.String(), "upgrade") {
		t.Fatalf("second Open upgraded again:\n%s", logs.String())
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		out, err := os.OpenFile(filepath.Join(dir, filepath.Base(h.Name)), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, tr); err != nil {
			t.Fatal(err)
		}
		out.Close()
	}
}
