package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

// Index names a secondary index for Lookup.
type Index string

// The secondary indexes. Lookup folds the value the same way the index does.
const (
	IndexUserName    Index = "userName"    // users' userName, case-folded
	IndexExternalID  Index = "externalId"  // externalId, exact
	IndexEmail       Index = "email"       // users' emails[].value, case-folded
	IndexDN          Index = "dn"          // dn.Normalize(Resource.DN)
	IndexDisplayName Index = "displayName" // groups' displayName, case-folded
	IndexManager     Index = "manager"     // users' enterprise manager.value (an id), exact: a manager's reports
)

// indexByte returns the key byte of a non-unique index ('x' keys), or 0.
func indexByte(idx Index) byte {
	switch idx {
	case IndexUserName:
		return 'u'
	case IndexExternalID:
		return 'e'
	case IndexEmail:
		return 'm'
	case IndexDisplayName:
		return 'n'
	case IndexManager:
		return 'r'
	}
	return 0
}

// fold returns v as index idx stores it.
func fold(idx Index, v string) string {
	switch idx {
	case IndexExternalID, IndexManager:
		return v
	case IndexDN:
		return normalizeDN(v)
	}
	return strings.ToLower(v)
}

// indexValues are the values of a resource that non-unique indexes hold.
type indexValues struct {
	userName, externalID, displayName, manager string
	emails                                     []string
}

func valuesOf(r *scim.Resource) indexValues {
	return indexValues{userName: r.UserName(), externalID: r.ExternalID, displayName: r.DisplayName(),
		emails: r.Emails(), manager: managerID(r.Attributes[scim.SchemaEnterpriseUser])}
}

// managerID returns the manager.value of an enterprise extension object, or "".
func managerID(ext any) string {
	m, _ := ext.(map[string]any)
	mgr, _ := m["manager"].(map[string]any)
	id, _ := mgr["value"].(string)
	return id
}

// valuesOfStored decodes the indexed attributes of a stored resource.
func valuesOfStored(st *stored) indexValues {
	r := scim.Resource{Attributes: map[string]any{}}
	for _, name := range []string{"userName", "displayName", "emails", scim.SchemaEnterpriseUser} {
		if raw, ok := st.Attributes[name]; ok {
			var v any
			if json.Unmarshal(raw, &v) == nil {
				r.Attributes[name] = v
			}
		}
	}
	v := valuesOf(&r)
	v.externalID = st.ExternalID
	return v
}

// indexKeys returns the 'x' keys (as strings) of a resource of type tb.
func indexKeys(tb byte, id string, v indexValues) []string {
	keys := make([]string, 0, 4+len(v.emails))
	add := func(idx Index, value string) {
		if value == "" {
			return
		}
		k := string(indexKey(indexByte(idx), fold(idx, value), id))
		if !contains(keys, k) {
			keys = append(keys, k)
		}
	}
	add(IndexExternalID, v.externalID)
	switch tb {
	case 'U':
		add(IndexUserName, v.userName)
		for _, e := range v.emails {
			add(IndexEmail, e)
		}
		add(IndexManager, v.manager)
	case 'G':
		add(IndexDisplayName, v.displayName)
	}
	return keys
}

// indexVersion is the layout of the keys beside the resources: version 1 added the manager
// index, version 2 moved group members out of the group's value into keys of their own. Open
// brings a cache written by an older ldapscim up to it.
const indexVersion = 2

var indexVersionKey = []byte{kindCounter, 'i', 'x', 'v'}

// upgradeIndexes brings a cache written by an older ldapscim up to indexVersion, then records
// the version. Every step is idempotent, so a crash midway only means doing it again at the
// next Open. Nothing else runs yet.
func (s *Store) upgradeIndexes(log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "cache")
	var v uint64
	err := s.db.View(func(txn *badger.Txn) (err error) {
		v, err = getCounter(txn, indexVersionKey)
		return err
	})
	if err != nil || v >= indexVersion {
		return err
	}
	if v < 1 {
		if err := s.buildManagerIndex(log); err != nil {
			return err
		}
	}
	if v < 2 {
		if err := s.migrateGroups(log); err != nil {
			return err
		}
	}
	return s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(indexVersionKey, binary.BigEndian.AppendUint64(nil, indexVersion))
	})
}

// buildManagerIndex writes the manager index from the stored users.
func (s *Store) buildManagerIndex(log *slog.Logger) error {
	start, n := time.Now(), 0
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	prefix := resourcePrefix('U')
	err := s.db.View(func(txn *badger.Txn) error {
		return scan(context.Background(), txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
			return item.Value(func(val []byte) error {
				_, body, err := splitHeader(val)
				if err != nil {
					return err
				}
				var c struct {
					Attributes map[string]json.RawMessage `json:"attributes"`
				}
				if err := json.Unmarshal(body, &c); err != nil {
					return fmt.Errorf("%w: resource %s: %v", ErrCorrupt, k[len(prefix):], err)
				}
				var ext any
				if raw, ok := c.Attributes[scim.SchemaEnterpriseUser]; ok && json.Unmarshal(raw, &ext) != nil {
					return fmt.Errorf("%w: resource %s: enterprise extension", ErrCorrupt, k[len(prefix):])
				}
				if m := managerID(ext); m != "" {
					n++
					return wb.Set(indexKey(indexByte(IndexManager), m, string(k[len(prefix):])), nil)
				}
				return nil
			})
		})
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("cache: building the manager index: %w", err)
	}
	if n > 0 {
		log.Info("cache upgraded: built the manager index", "reports", n, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// migrateGroups moves the members of every group stored with its members inside its value
// (formatPlain) into member keys and rewrites the group as formatGroup. First every member key
// is written and flushed, then the groups are rewritten, so a group in the new format always
// has its member keys, whatever moment a crash picks. Content and created/lastModified stay;
// only meta.version changes (it now covers the member set through its summary). No journal
// record is written: nothing changed in the directory.
func (s *Store) migrateGroups(log *slog.Logger) error {
	start := time.Now()
	var groups, members int
	forEachPlain := func(fn func(id string, h header, body []byte, c *content) error) error {
		prefix := resourcePrefix('G')
		return s.db.View(func(txn *badger.Txn) error {
			return scan(context.Background(), txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
				return item.Value(func(v []byte) error {
					h, body, err := splitHeader(v)
					if err != nil || h.format != formatPlain {
						return err
					}
					id := string(k[len(prefix):])
					var c content
					if err := json.Unmarshal(body, &c); err != nil {
						return fmt.Errorf("%w: group %s: %v", ErrCorrupt, id, err)
					}
					return fn(id, h, body, &c)
				})
			})
		})
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := forEachPlain(func(id string, _ header, _ []byte, c *content) error {
		if groups == 0 {
			log.Info("cache upgrade: moving group members into keys of their own (one-time)")
		}
		groups++
		ms, err := sortedMembers(c.Members)
		if err != nil {
			return fmt.Errorf("%w: group %s: %v", ErrCorrupt, id, err)
		}
		for _, m := range ms {
			members++
			if err := wb.Set(groupMemberKey(id, m.Value), memberValue(m)); err != nil {
				return err
			}
			if err := wb.Set(memberKey(m.Value, id), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("cache: upgrading groups: %w", err)
	}
	if groups == 0 {
		return nil
	}
	wb2 := s.db.NewWriteBatch()
	defer wb2.Cancel()
	err = s.db.View(func(refs *badger.Txn) error {
		return forEachPlain(func(id string, h header, body []byte, c *content) error {
			ms, err := sortedMembers(c.Members)
			if err != nil {
				return err
			}
			// The members are the last top-level key encode wrote; nothing inside a value can
			// look like `,"members":` at the top level, so the last one is theirs.
			cut := bytes.LastIndex(body, []byte(`,"members":`))
			if cut < 0 {
				return fmt.Errorf("%w: group %s: no members key", ErrCorrupt, id)
			}
			newBody := append(slices.Clip(body[:cut]), '}')
			sum, ch := summarize(ms), sha256.Sum256(newBody)
			v, err := getValue(refs, refKey(id))
			if err != nil {
				return fmt.Errorf("group %s: ref: %w", id, err)
			}
			ref, err := decodeRef(v)
			if err != nil {
				return err
			}
			if err := wb2.Set(resourceKey('G', id), groupValue(ch, sum, h.created, h.modified, newBody)); err != nil {
				return err
			}
			return wb2.Set(refKey(id), refValue('G', versionHash(ch, sum), ref.display))
		})
	})
	if err == nil {
		err = wb2.Flush()
	}
	if err != nil {
		return fmt.Errorf("cache: upgrading groups: %w", err)
	}
	log.Info("cache upgraded: group members moved into keys of their own", "groups", groups, "members", members,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}
