package sqlite

import (
	"io"

	"golang.org/x/sys/unix"
)

// procLockBase is the byte of the counters' file whose lock the process
// in slot 0 holds, slot p the byte p after it: past the file's end, since
// a lock needs no data there.
const procLockBase = 1 << 20

// takeProcSlot takes the first free process slot: an open-file-description
// lock (F_OFD_SETLK) on its byte of the counters' file, held until the
// file is closed, or released by the kernel when the process dies. The
// slot names the process in its waiting marks (turns.go) and holds its
// pending word (readcache.go's pendCache), so that the others can tell
// what a dead process left. It returns -1 when every slot is held, or the
// lock cannot be taken (a file system without such locks): the process's
// marks then name no owner, and it sets no pending word.
func (g *sharedGen) takeProcSlot() int {
	if g.f == nil {
		return -1
	}
	for p := range turnSlots {
		lk := slotLock(p, unix.F_WRLCK)
		if unix.FcntlFlock(g.f.Fd(), unix.F_OFD_SETLK, &lk) == nil {
			return p
		}
	}
	return -1
}

// procAlive says whether the process slot p is held by another open file
// of the counters' file: whether the process that took it is still
// running. One that cannot be asked counts as alive.
func (g *sharedGen) procAlive(p int) bool {
	if g.f == nil {
		return true
	}
	lk := slotLock(p, unix.F_WRLCK)
	if err := unix.FcntlFlock(g.f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return true
	}
	return lk.Type != unix.F_UNLCK
}

// slotLock is a lock of type typ (F_WRLCK, F_UNLCK) on process slot p's
// byte.
func slotLock(p int, typ int16) unix.Flock_t {
	return unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: procLockBase + int64(p), Len: 1}
}
