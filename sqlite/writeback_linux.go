//go:build linux

package sqlite

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing f's changed pages to
// the disk, and returns without waiting for them, or for the disk's cache
// (sync_file_range(2) with SYNC_FILE_RANGE_WRITE). It makes nothing
// durable and promises nothing: a later fsync still does that, with less
// left to write.
func startWriteback(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}); err != nil {
		return err
	}
	return serr
}
