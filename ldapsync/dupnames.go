package ldapsync

import (
	"context"
	"slices"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// dupSampleSize bounds how many duplicate userNames a pass keeps to name in its warning.
const dupSampleSize = 5

// dupNames counts the users a pass wrote whose userName another cached user also holds (the
// same uid in two OUs): SCIM clients then see two users for one name. It asks the cache's
// userName index after each batch is written, so a pass needs no set of all userNames and
// stays bounded in memory whatever the directory's size; two users written in one pass are
// each counted once the second is written.
type dupNames struct {
	count  int
	sample []string // at most dupSampleSize userNames, for the log
}

// check looks up the userName of every user in upserts, which the cache already holds, in one
// snapshot.
func (d *dupNames) check(ctx context.Context, store Store, upserts []*scim.Resource) error {
	var names []string
	for _, r := range upserts {
		if r.Type == scim.UserType && r.UserName() != "" {
			names = append(names, r.UserName())
		}
	}
	if len(names) == 0 {
		return nil
	}
	counts, err := store.CountIndexed(ctx, cache.IndexUserName, names)
	if err != nil {
		return err
	}
	for i, name := range names {
		if counts[i] > 1 {
			d.count++
			if len(d.sample) < dupSampleSize && !slices.Contains(d.sample, name) {
				d.sample = append(d.sample, name)
			}
		}
	}
	return nil
}

// merge adds o's findings to d, keeping the sample bounded.
func (d *dupNames) merge(o dupNames) {
	d.count += o.count
	for _, n := range o.sample {
		if len(d.sample) < dupSampleSize && !slices.Contains(d.sample, n) {
			d.sample = append(d.sample, n)
		}
	}
}

// warnDuplicates logs the pass's duplicate userNames, if any, with a bounded sample.
func (s *Syncer) warnDuplicates(passID string, d dupNames) {
	if d.count == 0 {
		return
	}
	s.log.Warn("users written in this pass share their userName with another user; SCIM clients see both (explain by id, fix the directory or the userName mapping)",
		"pass", passID, "users", d.count, "sample", d.sample)
}
