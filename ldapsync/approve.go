package ldapsync

import (
	"context"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
)

// ApproveHolds releases held deletions, deactivations and mass member removals (invariant 5,
// docs/architecture.md): ids nil means every held change. It needs no directory connection.
// It returns what was applied. See ingest.ApproveHolds.
func ApproveHolds(ctx context.Context, store Store, ids []string) (cache.Result, error) {
	return ingest.ApproveHolds(ctx, store, Source, ids)
}
