package ledger

import "os"

// FailSyncs makes every fsync fail with err until the returned function
// is called.
func FailSyncs(err error) (restore func()) {
	old := syncFile
	syncFile = func(*os.File) error { return err }
	return func() { syncFile = old }
}
