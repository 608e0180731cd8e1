package sqlite

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The write connection's WAL writes, gathered.
//
// SQLite writes a commit's WAL frames one at a time, each with two write
// calls: its 24-byte header, then its 4 KiB page (walWriteOneFrame). A
// commit group of creates writes about 63 frames, so 126 pwrite calls,
// and those calls took 28 % of the writer goroutine's CPU in a create
// profile (bench/profiles/create-sqlite-c16-session16.prof: 1.62 s of
// 5.70 s in libc.Xpwrite). On this host a pwrite of 4 KiB into the page
// cache costs about 1.9 µs when idle and 3.7 µs under load, and one
// pwrite of the same 260 KB costs 20 µs including the copy
// (BENCHMARKS.md, nineteenth session).
//
// So the write connection opens the database through walVFS, a VFS that
// is the default ("unix") one in every respect but this: a file opened as
// a WAL gathers consecutive writes in a buffer and hands them to the
// default VFS as one write when the buffer is full, when a write does not
// follow on from the last, and before anything else is done with the file
// — sync, read, truncate, size, file control, close. SQLite publishes a
// commit to other connections (the WAL index header in shared memory)
// only after the frames are written and, with synchronous=FULL, after
// xSync on the WAL (sqlite3WalFrames), and xSync writes the buffer first;
// so what another connection can see is always in the file. That holds
// only with synchronous=FULL, which the write connection always sets
// (TestPragmas), and only the write connection uses this VFS. Readers and
// the checkpointer never write the WAL and open it as before. xSync then
// syncs at once, except at the end of a commit group's COMMIT, whose sync
// it leaves to the syncer goroutine (durable.go), which answers the
// group's callers after it: what is acknowledged is on disk, as before.
//
// Frames a transaction spilled into the WAL before it rolled back may
// still be in the buffer when the transaction ends, and another
// connection may then write committed frames at the same offsets; a late
// write of the old ones would overwrite those. So the database file
// opened through walVFS flushes its connection's WAL when the connection
// lets go of the WAL's write lock (dbShmLock), while no one else can
// write (TestWALVFSRollbackLeavesNothingBehind).

// walVFSName is the name the VFS is registered under.
const walVFSName = "custos-wal"

// walBufSize is the most a WAL file gathers before it writes: 31 frames
// of a 4 KiB page. It is the largest write the default VFS makes in one
// call: its seekAndWriteFd keeps only a length's low 17 bits
// (nBuf &= 0x1ffff), so a longer write comes back short and fails with
// SQLITE_FULL.
const walBufSize = 0x1ffff

var walVFS struct {
	once sync.Once
	err  error

	base    uintptr // *Tsqlite3_vfs: the default VFS
	extra   uintptr // offset of our handle in a file struct
	mu      sync.Mutex
	methods map[methodsKey]uintptr // ours, by what they wrap (wrapMethods)

	files sync.Map // handle → *walFile or *dbFile
	next  atomic.Uintptr
	// writers holds the durability each write connection named, by the
	// connection's TLS (durable.go).
	writers sync.Map // *libc.TLS → *durability
}

// dbFile is a main database file opened through walVFS.
type dbFile struct {
	name string                       // its WAL is name + "-wal"
	base *sqlite3.Tsqlite3_io_methods // the default VFS's methods for it
	// writer is the TLS of the connection that named a durability
	// through this file, if one did.
	writer *libc.TLS
}

// walFile is one WAL opened through walVFS.
type walFile struct {
	name  string
	pFile uintptr // its sqlite3_file, valid until walClose
	mu    sync.Mutex
	base  *sqlite3.Tsqlite3_io_methods // the default VFS's methods for it
	mem   uintptr                      // buf's memory, C memory from libc
	buf   []byte
	off   int64 // file offset of buf[0]
	// header is set when SQLite writes the WAL's header (offset 0), and
	// cleared by the next sync, which is then never left to the syncer.
	header bool
	// asked counts the writes SQLite made, issued those the default VFS
	// was given (for tests).
	asked, issued int64
}

// registerWALVFS registers walVFS once, before the first connection that
// names it opens.
func registerWALVFS() error {
	walVFS.once.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		base := sqlite3.Xsqlite3_vfs_find(tls, 0)
		if base == 0 {
			walVFS.err = fmt.Errorf("sqlite: no default VFS")
			return
		}
		b := (*sqlite3.Tsqlite3_vfs)(cptr(base))
		name, err := libc.CString(walVFSName)
		if err != nil {
			walVFS.err = err
			return
		}
		v := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
		if v == 0 {
			walVFS.err = fmt.Errorf("sqlite: out of memory")
			return
		}
		ours := (*sqlite3.Tsqlite3_vfs)(cptr(v))
		*ours = *b
		ours.FpNext = 0
		ours.FzName = name
		walVFS.extra = (uintptr(b.FszOsFile) + 7) &^ 7
		ours.FszOsFile = int32(walVFS.extra + unsafe.Sizeof(uintptr(0)))
		setCFn[openFn](&ours.FxOpen, walvfsOpen)
		walVFS.base = base
		walVFS.methods = map[methodsKey]uintptr{}
		if rc := sqlite3.Xsqlite3_vfs_register(tls, v, 0); rc != sqlite3.SQLITE_OK {
			walVFS.err = fmt.Errorf("sqlite: registering the %s VFS: code %d", walVFSName, rc)
		}
	})
	return walVFS.err
}

// cptr turns an address SQLite handed over into a pointer. Every such
// address here is C memory from modernc's libc allocator, which the Go
// collector neither moves nor frees; go vet cannot know that of a
// uintptr, so the conversion goes through memory.
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// cfn returns the function behind a C function pointer: in modernc's
// translation, a pointer to a Go func value of the C signature.
func cfn[F any](p uintptr) F { return *(*F)(unsafe.Pointer(&struct{ uintptr }{p})) }

// setCFn points the C function pointer in slot at f.
func setCFn[F any](slot *uintptr, f F) { *(*F)(unsafe.Pointer(slot)) = f }

// The C signatures of the methods this file calls or replaces.
type (
	openFn        = func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32
	closeFn       = func(*libc.TLS, uintptr) int32
	ioFn          = func(*libc.TLS, uintptr, uintptr, int32, int64) int32 // xRead, xWrite
	truncateFn    = func(*libc.TLS, uintptr, int64) int32
	syncFn        = func(*libc.TLS, uintptr, int32) int32
	fileSizeFn    = func(*libc.TLS, uintptr, uintptr) int32
	fileControlFn = func(*libc.TLS, uintptr, int32, uintptr) int32
	shmLockFn     = func(*libc.TLS, uintptr, int32, int32, int32) int32
)

// subjournalOpens counts the statement journals SQLite spilled to a file
// through this VFS, which the write connection's temp_store=MEMORY never
// does; a test lowers it to FILE to see whether a statement kept one.
var subjournalOpens atomic.Int64

func walvfsOpen(tls *libc.TLS, pVfs, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	if flags&sqlite3.SQLITE_OPEN_SUBJOURNAL != 0 {
		subjournalOpens.Add(1)
	}
	b := (*sqlite3.Tsqlite3_vfs)(cptr(walVFS.base))
	handle := (*uintptr)(cptr(pFile + walVFS.extra))
	*handle = 0
	rc := cfn[openFn](b.FxOpen)(tls, walVFS.base, zName, pFile, flags, pOutFlags)
	file := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if rc != sqlite3.SQLITE_OK || file.FpMethods == 0 || zName == 0 {
		return rc
	}
	if flags&sqlite3.SQLITE_OPEN_MAIN_DB != 0 {
		m := wrapMethods(tls, file.FpMethods, false)
		if m == 0 {
			closeBase(tls, file.FpMethods, pFile)
			file.FpMethods = 0
			return sqlite3.SQLITE_NOMEM
		}
		h := walVFS.next.Add(1)
		walVFS.files.Store(h, &dbFile{name: libc.GoString(zName), base: (*sqlite3.Tsqlite3_io_methods)(cptr(file.FpMethods))})
		*handle = h
		file.FpMethods = m
		return rc
	}
	if flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	m := wrapMethods(tls, file.FpMethods, true)
	buf := libc.Xmalloc(tls, walBufSize)
	if m == 0 || buf == 0 {
		closeBase(tls, file.FpMethods, pFile)
		libc.Xfree(tls, buf)
		file.FpMethods = 0
		return sqlite3.SQLITE_NOMEM
	}
	f := &walFile{
		name:  libc.GoString(zName),
		pFile: pFile,
		base:  (*sqlite3.Tsqlite3_io_methods)(cptr(file.FpMethods)),
		mem:   buf,
		buf:   unsafe.Slice((*byte)(cptr(buf)), walBufSize)[:0],
	}
	h := walVFS.next.Add(1)
	walVFS.files.Store(h, f)
	*handle = h
	file.FpMethods = m
	return rc
}

// closeBase closes a file the default VFS opened, with its methods.
func closeBase(tls *libc.TLS, methods, pFile uintptr) {
	cfn[closeFn]((*sqlite3.Tsqlite3_io_methods)(cptr(methods)).FxClose)(tls, pFile)
}

// methodsKey names a table of wrapped methods: the default methods it
// wraps, and whether for a WAL or a database file.
type methodsKey struct {
	base uintptr
	wal  bool
}

// wrapMethods returns the io methods of a file opened through walVFS
// whose default methods are base: base's, with the write path replaced
// for a WAL, and the shared-memory lock and close for a database file.
// The table is in C memory, as SQLite's own are, and lives as long as
// the process.
func wrapMethods(tls *libc.TLS, base uintptr, wal bool) uintptr {
	walVFS.mu.Lock()
	defer walVFS.mu.Unlock()
	key := methodsKey{base, wal}
	if m, ok := walVFS.methods[key]; ok {
		return m
	}
	p := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_io_methods{})))
	if p == 0 {
		return 0
	}
	m := (*sqlite3.Tsqlite3_io_methods)(cptr(p))
	*m = *(*sqlite3.Tsqlite3_io_methods)(cptr(base))
	if wal {
		setCFn[closeFn](&m.FxClose, walClose)
		setCFn[ioFn](&m.FxRead, walRead)
		setCFn[ioFn](&m.FxWrite, walWrite)
		setCFn[truncateFn](&m.FxTruncate, walTruncate)
		setCFn[syncFn](&m.FxSync, walSync)
		setCFn[fileSizeFn](&m.FxFileSize, walFileSize)
		setCFn[fileControlFn](&m.FxFileControl, walFileControl)
	} else {
		setCFn[closeFn](&m.FxClose, dbClose)
		setCFn[shmLockFn](&m.FxShmLock, dbShmLock)
		setCFn[fileControlFn](&m.FxFileControl, dbFileControl)
	}
	walVFS.methods[key] = p
	return p
}

func dbFileOf(pFile uintptr) (uintptr, *dbFile) {
	h := *(*uintptr)(cptr(pFile + walVFS.extra))
	f, ok := walVFS.files.Load(h)
	if !ok {
		panic(fmt.Sprintf("sqlite: database file handle %d unknown", h))
	}
	return h, f.(*dbFile)
}

// walWriteLock is the WAL's write lock in SQLite's shared-memory locks
// (WAL_WRITE_LOCK).
const walWriteLock = 0

// dbShmLock is the database file's xShmLock: when the connection lets go
// of the WAL's write lock, its WAL first writes what it has gathered
// (frames of a transaction that rolled back; after a commit there is
// nothing left). A failed write only loses those frames, which nothing
// reads.
func dbShmLock(tls *libc.TLS, pFile uintptr, ofst, n, flags int32) int32 {
	_, d := dbFileOf(pFile)
	if flags&sqlite3.SQLITE_SHM_UNLOCK != 0 && ofst <= walWriteLock && walWriteLock < ofst+n {
		wal := d.name + "-wal"
		walVFS.files.Range(func(_, v any) bool {
			if f, ok := v.(*walFile); ok && f.name == wal {
				f.mu.Lock()
				f.flush(tls)
				f.mu.Unlock()
			}
			return true
		})
	}
	return cfn[shmLockFn](d.base.FxShmLock)(tls, pFile, ofst, n, flags)
}

// dbFileControl is the database file's xFileControl. The pragma
// durablePragma binds the connection, by its TLS, to the durability its
// argument names; every other control goes to the default VFS.
func dbFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	_, d := dbFileOf(pFile)
	if op == sqlite3.SQLITE_FCNTL_PRAGMA {
		// pArg is char*[3]: the result or error message, the pragma's
		// name and its argument (NULL if none).
		args := (*[3]uintptr)(cptr(pArg))
		if args[1] != 0 && libc.GoString(args[1]) == durablePragma {
			var st *durability
			if args[2] != 0 {
				st = durableByName(libc.GoString(args[2]))
			}
			if st == nil {
				return sqlite3.SQLITE_ERROR
			}
			walVFS.writers.Store(tls, st)
			d.writer = tls
			st.bound.Store(true)
			return sqlite3.SQLITE_OK
		}
	}
	return cfn[fileControlFn](d.base.FxFileControl)(tls, pFile, op, pArg)
}

func dbClose(tls *libc.TLS, pFile uintptr) int32 {
	h, d := dbFileOf(pFile)
	if d.writer != nil {
		walVFS.writers.Delete(d.writer)
	}
	rc := cfn[closeFn](d.base.FxClose)(tls, pFile)
	walVFS.files.Delete(h)
	return rc
}

func walFileOf(pFile uintptr) *walFile {
	h := *(*uintptr)(cptr(pFile + walVFS.extra))
	f, ok := walVFS.files.Load(h)
	if !ok {
		panic(fmt.Sprintf("sqlite: WAL file handle %d unknown", h))
	}
	return f.(*walFile)
}

// Test hooks. walFailWrite is asked before each write a WAL file hands
// to the default VFS and may fail it with its result; walSyncCheck is
// told, at each sync of a WAL, how many bytes are still gathered (which
// must be none, or the sync would not cover them); walSynced is told of
// each sync a WAL makes at once rather than leaving it to the syncer, and
// whether a header was written since the last.
var (
	walFailWrite func() int32
	walSyncCheck func(gathered int)
	walSynced    func(header bool)
)

// flush writes what f has gathered. The caller holds f.mu.
func (f *walFile) flush(tls *libc.TLS) int32 {
	if len(f.buf) == 0 {
		return sqlite3.SQLITE_OK
	}
	f.issued++
	if walFailWrite != nil {
		if rc := walFailWrite(); rc != sqlite3.SQLITE_OK {
			f.buf = f.buf[:0]
			return rc
		}
	}
	rc := cfn[ioFn](f.base.FxWrite)(tls, f.pFile, f.mem, int32(len(f.buf)), f.off)
	f.buf = f.buf[:0]
	return rc
}

func walWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := walFileOf(pFile)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if iOfst == 0 {
		f.header = true
	}
	n := int(iAmt)
	if len(f.buf) > 0 && (iOfst != f.off+int64(len(f.buf)) || len(f.buf)+n > walBufSize) {
		if rc := f.flush(tls); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if n > walBufSize {
		f.issued++
		return cfn[ioFn](f.base.FxWrite)(tls, pFile, zBuf, iAmt, iOfst)
	}
	if len(f.buf) == 0 {
		f.off = iOfst
	}
	// Never past cap: the buffer is C memory that append would leave.
	l := len(f.buf)
	f.buf = f.buf[:l+n]
	copy(f.buf[l:], unsafe.Slice((*byte)(cptr(zBuf)), n))
	return sqlite3.SQLITE_OK
}

// gathered returns f's counts of writes SQLite asked for and writes
// issued, and how many bytes it holds.
func (f *walFile) gathered() (asked, issued int64, left int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked, f.issued, len(f.buf)
}

// flushed flushes the WAL behind pFile and returns it with the flush's
// result.
func flushed(tls *libc.TLS, pFile uintptr) (*walFile, int32) {
	f := walFileOf(pFile)
	f.mu.Lock()
	rc := f.flush(tls)
	f.mu.Unlock()
	return f, rc
}

func walRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return cfn[ioFn](f.base.FxRead)(tls, pFile, zBuf, iAmt, iOfst)
}

// walSync is the WAL's xSync. It writes what is gathered, then syncs,
// unless the connection's durability is deferring (a commit group's
// COMMIT, durable.go) and no WAL header was written since the last sync:
// then the syncer will sync, and the connection goes on.
func walSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	f := walFileOf(pFile)
	f.mu.Lock()
	rc := f.flush(tls)
	header := f.header
	f.mu.Unlock()
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	if walSyncCheck != nil {
		_, _, left := f.gathered()
		walSyncCheck(left)
	}
	if !header {
		if v, ok := walVFS.writers.Load(tls); ok {
			if d := v.(*durability); d.deferring.Load() {
				d.deferred.Add(1)
				return sqlite3.SQLITE_OK
			}
		}
	}
	if walSynced != nil {
		walSynced(header)
	}
	rc = cfn[syncFn](f.base.FxSync)(tls, pFile, flags)
	if rc == sqlite3.SQLITE_OK {
		f.mu.Lock()
		f.header = false
		f.mu.Unlock()
	}
	return rc
}

func walTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return cfn[truncateFn](f.base.FxTruncate)(tls, pFile, size)
}

func walFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return cfn[fileSizeFn](f.base.FxFileSize)(tls, pFile, pSize)
}

func walFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	f, rc := flushed(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return cfn[fileControlFn](f.base.FxFileControl)(tls, pFile, op, pArg)
}

func walClose(tls *libc.TLS, pFile uintptr) int32 {
	h := *(*uintptr)(cptr(pFile + walVFS.extra))
	f, rc := flushed(tls, pFile)
	rc2 := cfn[closeFn](f.base.FxClose)(tls, pFile)
	walVFS.files.Delete(h)
	libc.Xfree(tls, f.mem)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return rc2
}
