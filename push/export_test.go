package push

// SetAfterCompare sets the hook a reconciliation calls once it has read the whole target
// (BenchmarkReconcile100k measures the heap there); nil removes it.
func SetAfterCompare(f func()) { afterCompare = f }
