package sqlite

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The read connections' pages, copied from a map of the file.
//
// A read connection's page cache does not outlive a change to the WAL:
// SQLite empties it at the start of any read transaction that finds the
// WAL changed since the connection's last one (pager_reset), and under a
// stream of audit commits that is every read. So each read that custos's
// own read cache does not answer walks its B-trees from the root with one
// pread per page: about 20 on a store of 10,000,000 customers, where
// pread took 28 % of a read's CPU (BENCHMARKS.md, fifteenth session),
// and 2.8 µs a call on this host against 0.3 µs to copy the same 4 KiB
// from a map of the file (twentieth session).
//
// SQLite's own memory map (PRAGMA mmap_size) does not help: pager_reset
// also unmaps it, so it is set up again for every read, and reads got
// slower with it (fourteenth session). So the read connections open the
// database through readVFS, which is the default VFS in every respect but
// this: a main database file's xRead copies from a read-only shared map
// of the file, one per file per process, that lives as long as any
// connection has the file open. Only xRead changes; locking, the WAL and
// its index are the default VFS's, and the file is the same.
//
// A shared map of a file shows what the file holds now, whoever wrote it
// (Linux keeps one page cache for both), so the map is as current as a
// pread and SQLite's locking protocol decides, as before, which pages a
// reader takes from the database file. The map reserves more address
// space than the file holds (mapReserve) so that it need not move as the
// file grows; the reads copy only below the size the file is known to
// have (avail), which grows as pread shows the file longer. Touching a
// map past the file's end raises SIGBUS, which would end the process; so
// the copy runs with debug.SetPanicOnFault, and a fault (the file was cut
// shorter by another program: custos never shrinks it, nothing here
// VACUUMs) makes the read fall back to pread and the map forget its size.

// readVFSName is the name the read connections' VFS is registered under.
const readVFSName = "custos-read"

// mapReserve is the least address space a file's map reserves: reads
// past it, in a file that has grown beyond it, use pread. A file that is
// already larger at open reserves twice its size.
const mapReserve = 64 << 30

var readVFS struct {
	once  sync.Once
	err   error
	base  uintptr // *Tsqlite3_vfs: the default VFS
	extra uintptr // offset of our handle in a file struct

	mu      sync.Mutex
	methods map[uintptr]uintptr  // ours, by the default methods they wrap
	maps    map[fileKey]*fileMap // open files' maps

	files sync.Map // handle → *readFile
	next  atomic.Uintptr

	// Counters for tests: reads copied from a map, reads passed to the
	// default VFS, and faults recovered.
	mapped, passed, faults atomic.Int64
}

// fileKey names a file by device and inode, so that every connection to
// one file shares its map, and a file put in another's place gets its own.
type fileKey struct{ dev, ino uint64 }

// fileMap is one file's map.
type fileMap struct {
	key   fileKey
	mem   []byte       // the whole reservation
	avail atomic.Int64 // bytes the file is known to hold; never past len(mem)
	refs  int          // open files using it, under readVFS.mu
}

// readFile is a main database file opened through readVFS.
type readFile struct {
	base *sqlite3.Tsqlite3_io_methods // the default VFS's methods for it
	m    *fileMap
}

// registerReadVFS registers readVFS once, before the first connection
// that names it opens.
func registerReadVFS() error {
	readVFS.once.Do(func() {
		readVFS.methods = map[uintptr]uintptr{}
		readVFS.maps = map[fileKey]*fileMap{}
		readVFS.base, readVFS.extra, readVFS.err = registerVFS(readVFSName, readvfsOpen)
	})
	return readVFS.err
}

func readvfsOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	b := (*sqlite3.Tsqlite3_vfs)(cptr(readVFS.base))
	handle := (*uintptr)(cptr(pFile + readVFS.extra))
	*handle = 0
	rc := cfn[openFn](b.FxOpen)(tls, readVFS.base, zName, pFile, flags, pOutFlags)
	file := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if rc != sqlite3.SQLITE_OK || file.FpMethods == 0 || flags&sqlite3.SQLITE_OPEN_MAIN_DB == 0 {
		return rc
	}
	// The default VFS's file struct begins with its unixFile.
	fd := int((*sqlite3.TunixFile)(cptr(pFile)).Fh)
	m := mapFile(fd)
	if m == nil {
		return rc // no map: the file reads as it would through the default VFS
	}
	readVFS.mu.Lock()
	defer readVFS.mu.Unlock()
	methods := readMethods(tls, file.FpMethods)
	if methods == 0 {
		unmapLocked(m)
		return rc
	}
	h := readVFS.next.Add(1)
	readVFS.files.Store(h, &readFile{base: (*sqlite3.Tsqlite3_io_methods)(cptr(file.FpMethods)), m: m})
	*handle = h
	file.FpMethods = methods
	return rc
}

// mapFile returns the map of the file open as fd, shared with every other
// open of the same file, or nil when it cannot be mapped.
func mapFile(fd int) *fileMap {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil
	}
	key := fileKey{uint64(st.Dev), uint64(st.Ino)}
	readVFS.mu.Lock()
	defer readVFS.mu.Unlock()
	if m, ok := readVFS.maps[key]; ok {
		m.refs++
		m.grow(st.Size)
		return m
	}
	size := max(int64(mapReserve), 2*st.Size)
	mem, err := syscall.Mmap(fd, 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil // address space is limited (ulimit -v): read as before
	}
	m := &fileMap{key: key, mem: mem, refs: 1}
	m.avail.Store(st.Size)
	readVFS.maps[key] = m
	return m
}

// unmapLocked lets go of one use of m; the last one unmaps it. The caller
// holds readVFS.mu.
func unmapLocked(m *fileMap) {
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(readVFS.maps, m.key)
	_ = syscall.Munmap(m.mem) // only fails for a range that is not mapped
}

// readMethods returns the io methods of a main database file opened
// through readVFS whose default methods are base: base's, with xRead and
// xClose replaced. The table is in C memory, as SQLite's own are, and
// lives as long as the process. The caller holds readVFS.mu.
func readMethods(tls *libc.TLS, base uintptr) uintptr {
	if m, ok := readVFS.methods[base]; ok {
		return m
	}
	p := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})))
	if p == 0 {
		return 0
	}
	m := (*sqlite3.Tsqlite3_io_methods)(cptr(p))
	*m = *(*sqlite3.Tsqlite3_io_methods)(cptr(base))
	setCFn[ioFn](&m.FxRead, mappedRead)
	setCFn[closeFn](&m.FxClose, mappedClose)
	readVFS.methods[base] = p
	return p
}

func readFileOf(pFile uintptr) (uintptr, *readFile) {
	h := *(*uintptr)(cptr(pFile + readVFS.extra))
	f, ok := readVFS.files.Load(h)
	if !ok {
		panic(fmt.Sprintf("sqlite: mapped file handle %d unknown", h))
	}
	return h, f.(*readFile)
}

func mappedRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	_, f := readFileOf(pFile)
	end := iOfst + int64(iAmt)
	if iOfst >= 0 && end <= f.m.avail.Load() && f.m.copy(unsafe.Slice((*byte)(cptr(zBuf)), iAmt), iOfst) {
		readVFS.mapped.Add(1)
		return sqlite3.SQLITE_OK
	}
	readVFS.passed.Add(1)
	rc := cfn[ioFn](f.base.FxRead)(tls, pFile, zBuf, iAmt, iOfst)
	if rc == sqlite3.SQLITE_OK {
		f.m.grow(end)
	}
	return rc
}

// grow notes that the file holds at least n bytes.
func (m *fileMap) grow(n int64) {
	n = min(n, int64(len(m.mem)))
	for {
		a := m.avail.Load()
		if n <= a || m.avail.CompareAndSwap(a, n) {
			return
		}
	}
}

// copy copies the file's bytes at off into dst from the map and reports
// whether it could: a fault (the file is shorter than avail says) makes
// the map forget its size, so that pread learns it again.
func (m *fileMap) copy(dst []byte, off int64) (ok bool) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if e, ok := r.(runtime.Error); !ok || !isFault(e) {
				panic(r)
			}
			readVFS.faults.Add(1)
			m.avail.Store(0)
			ok = false
		}
	}()
	copy(dst, m.mem[off:off+int64(len(dst))])
	return true
}

// isFault reports whether e is the runtime's error for a memory fault,
// which carries the faulting address.
func isFault(e runtime.Error) bool {
	_, ok := e.(interface{ Addr() uintptr })
	return ok
}

func mappedClose(tls *libc.TLS, pFile uintptr) int32 {
	h, f := readFileOf(pFile)
	rc := cfn[closeFn](f.base.FxClose)(tls, pFile)
	readVFS.files.Delete(h)
	readVFS.mu.Lock()
	unmapLocked(f.m)
	readVFS.mu.Unlock()
	return rc
}

// mapResidentLimit is how much of the process's resident size
// file-backed pages may take before the maps let go of the pages they
// hold (trimMaps, which the checkpointer calls every round, four times a
// second). Pages a map touched stay mapped, and so count in the process's
// resident size, until then; and the kernel maps a page's neighbours
// with it when they are in its page cache (fault-around: 16 pages on
// this host, which madvise(MADV_RANDOM) does not change), so a read load
// that touches one page in sixteen shows the whole file resident. A
// 300,000-row import's duplicate checks, on the read connections, had
// its server at 158 MiB of file pages against 19 MiB without the map
// (BENCHMARKS.md, twentieth session).
const mapResidentLimit = 64 << 20

// trimMaps drops every map's page-table entries when file-backed pages
// take more than limit bytes of the process's resident size, and reports
// whether it did. The pages stay in the kernel's page cache, and a read
// of one maps it again (a minor fault), so readers running meanwhile are
// only slower, never wrong: the maps are read-only views of the files.
func trimMaps(limit int64) bool {
	shared, ok := residentShared()
	if !ok || shared <= limit {
		return false
	}
	readVFS.mu.Lock()
	defer readVFS.mu.Unlock()
	for _, m := range readVFS.maps {
		_ = syscall.Madvise(m.mem, syscall.MADV_DONTNEED) // fails only for a range that is not mapped
	}
	return true
}

// residentShared returns the process's resident file-backed and shared
// pages, in bytes (/proc/self/statm's third field).
func residentShared() (int64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
