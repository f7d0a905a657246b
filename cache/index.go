package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
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

// indexVersion is the layout of the secondary indexes; version 1 added the manager index. Open
// brings a cache written by an older ldapscim up to it.
const indexVersion = 1

var indexVersionKey = []byte{kindCounter, 'i', 'x', 'v'}

// upgradeIndexes writes the index keys that an older cache lacks (the manager index), from the
// stored users, then records the version. The keys are idempotent, so a crash midway only means
// doing it again at the next Open. Nothing else runs yet.
func (s *Store) upgradeIndexes(log *slog.Logger) error {
	var v uint64
	err := s.db.View(func(txn *badger.Txn) (err error) {
		v, err = getCounter(txn, indexVersionKey)
		return err
	})
	if err != nil || v >= indexVersion {
		return err
	}
	start, n := time.Now(), 0
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	prefix := resourcePrefix('U')
	err = s.db.View(func(txn *badger.Txn) error {
		return scan(context.Background(), txn, prefix, nil, false, func(k []byte, item *badger.Item) error {
			return item.Value(func(val []byte) error {
				_, _, _, body, err := splitHeader(val)
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
	err = s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(indexVersionKey, binary.BigEndian.AppendUint64(nil, indexVersion))
	})
	if err == nil && n > 0 && log != nil {
		log.Info("cache upgraded: built the manager index", "component", "cache", "reports", n,
			"took", time.Since(start).Round(time.Millisecond))
	}
	return err
}
