package ingest

import (
	"context"
	"errors"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Store is the part of the cache the core reads and writes. *cache.Store implements it; every
// method is safe for concurrent use and returns cache errors (cache.ErrNotFound for a missing
// resource).
type Store interface {
	Apply(ctx context.Context, b cache.Batch) (cache.Result, error)
	Ref(ctx context.Context, id string) (cache.Ref, error)
	GroupsOf(ctx context.Context, memberID string) ([]cache.Ref, error)
	Lookup(ctx context.Context, idx cache.Index, value string) ([]string, error)
	// Get loads a group with every member: only for users, or groups known to be small.
	Get(ctx context.Context, typ scim.ResourceType, id string) (*scim.Resource, error)
	// GetMany with withMembers false reads groups without their members, whatever their size.
	GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error)
	// ForEachMember streams a group's members in id order, in constant memory.
	ForEachMember(ctx context.Context, gid, after string, fn func(scim.Member) error) error
	// MemberCount returns how many direct members a group has (ErrNotFound: no such group).
	MemberCount(ctx context.Context, gid string) (int, error)
	// IsMember reports whether memberID is a direct member of group gid.
	IsMember(ctx context.Context, gid, memberID string) (bool, error)
	ForEachID(ctx context.Context, typ scim.ResourceType, fn func(id string) error) error
	// ForEachOwned is ForEachID of the resources one source owns (cache.Batch.Own), or with
	// source "", of those no source owns: a source finds its deletions among its own only.
	ForEachOwned(ctx context.Context, typ scim.ResourceType, source string, fn func(id string) error) error
	Count(ctx context.Context, typ scim.ResourceType) (int, error)
	// CountOwned counts what one source owns, or with source "" what no source owns: the
	// total a pass's deletion threshold takes its percentage of.
	CountOwned(ctx context.Context, typ scim.ResourceType, source string) (int, error)
	Holds(ctx context.Context) ([]cache.Hold, error)
	SourceHashes(ctx context.Context, ids []string) (map[string][]byte, error)
	// Overlays, ForEachOverlay and HasOverlays read what enriching sources set on directory
	// users (cache.Overlay).
	Overlays(ctx context.Context, ids []string) (map[string]*cache.Overlay, error)
	ForEachOverlay(ctx context.Context, source string, fn func(id string, o *cache.Overlay) error) error
	HasOverlays(ctx context.Context) (bool, error)
}

// DisplayOf returns what a resource shows as its name: displayName, else userName.
func DisplayOf(r *scim.Resource) string {
	if d := r.DisplayName(); d != "" {
		return d
	}
	return r.UserName()
}

// BeginLoad starts a bulk load (cache.Store.BeginLoad) for a source's first pass into store, a
// cache without resources: its batches then go to the load, whose last one commits it. It
// returns nil, and no error, when store holds resources or cannot load (in memory, a test's).
func BeginLoad(ctx context.Context, store any) (*cache.Load, error) {
	ls, ok := store.(interface {
		BeginLoad(context.Context) (*cache.Load, error)
	})
	if !ok {
		return nil, nil
	}
	l, err := ls.BeginLoad(ctx)
	if errors.Is(err, cache.ErrNotEmpty) || errors.Is(err, cache.ErrInvalid) {
		return nil, nil
	}
	return l, err
}
