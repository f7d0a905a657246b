package ingest

// Threshold is the deletion threshold of [safety] (invariant 5, docs/architecture.md): a pass
// that would delete or deactivate more than MaxDeletes, or more than MaxDeletePercent, of the
// resources of one type holds those changes; users and groups are counted apart.
type Threshold struct {
	MaxDeletes       int
	MaxDeletePercent float64
}

// Over reports whether n deletions and deactivations out of total resources of one type cross
// the threshold.
func (t Threshold) Over(n, total int) bool {
	return n > 0 && (n > t.MaxDeletes || float64(n) > t.MaxDeletePercent/100*float64(total))
}

// MassRemovalFloor is how many members a pass may always remove from one group.
const MassRemovalFloor = 10

// MassRemoval reports whether removing n of a group's total members crosses the threshold:
// more than MassRemovalFloor and more than MaxDeletePercent of them. MaxDeletes does not apply:
// it counts resources of a type, not members of one group.
func (t Threshold) MassRemoval(n, total int) bool {
	return n > MassRemovalFloor && float64(n) > t.MaxDeletePercent/100*float64(total)
}
