package ldapsync

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/ldapscim/ldapscim/ingest"
)

// finish decides deactivations and deletions against the threshold and applies the rest of the
// pass together with the watermark (nil: keep the old one) and the held-deletion set in one
// cache batch, so the watermark never runs ahead of the data (invariant 2, docs/architecture.md).
func (p *pass) finish(ctx context.Context, wm *watermark, replaceHolds bool) error {
	edits := ingest.Edits{}
	if wm != nil {
		if err := p.rejoin(ctx, edits); err != nil {
			return err
		}
	}
	if err := p.drain(); err != nil {
		return err
	}
	p.addLoggedEdits(edits)
	maps.Copy(p.batchOv, p.asideOv)
	b, held, heldMembers, err := p.core.Last(ctx, ingest.Tail{Upserts: p.batch, Sources: p.batchSrc, Times: p.batchTimes, Overlays: p.batchOv,
		KeepMembers: p.keptMembers(), Edits: edits, ReplaceHolds: replaceHolds, Read: p.wasRead})
	if err != nil {
		return err
	}
	p.batch = nil
	p.sum.Held += held
	p.sum.HeldMembers += heldMembers
	if wm != nil {
		wm.LastPass = time.Now().UTC()
		raw, err := json.Marshal(wm)
		if err != nil {
			return err
		}
		b.Watermark = raw
	}
	if p.s.progress != nil {
		p.s.progress("apply", p.sum.Read)
	}
	res, err := p.s.store.Apply(ctx, b)
	p.sum.add(res)
	if err == nil {
		err = p.dups.check(ctx, p.s.store, b.Upserts)
	}
	p.sum.DuplicateUserNames = p.dups.count
	return err
}
