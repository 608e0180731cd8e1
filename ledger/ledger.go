// Package ledger keeps the shred ledger outside the store: an append-only,
// hash-chained JSON Lines file, fsync'ed before the erasure it records
// commits, so that every erasure survives losing the database and every
// backup of it (DESIGN "Crypto-shredding", S7). A restore reads the ledger
// files and re-applies each erasure the restored store does not reflect.
//
// An erasure's line is fsynced on its own (AppendErase), or written at
// once and fsynced with the other lines of its commit (AppendEraseUnsynced,
// then Sync before the commit).
//
// Each line is one Entry. Kind "erase" records an erasure (subject id,
// time, reason, actor id — ids and the operator's reason, never personal
// data); kind "void" says that the erase entry Voids belongs to a
// transaction that did not commit. Hash is SHA-256 over
// "custos-shred-ledger-v1\n" and the line's JSON with Hash empty; Prev is
// the previous line's Hash, so a removed, reordered or edited line breaks
// the chain.
//
// Concurrency: an exclusive flock(2) on the file is held while a line is
// appended, so the server and a CLI process on one host chain one file.
// On PostgreSQL each node keeps its own file (its data directory); a
// restore takes them all.
package ledger

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"custos"
)

// DefaultName is the ledger's file name in the data directory.
const DefaultName = "shred-ledger.jsonl"

const hashPrefix = "custos-shred-ledger-v1\n"

// Entry kinds.
const (
	KindErase = "erase"
	KindVoid  = "void"
)

// Entry is one line of the ledger.
type Entry struct {
	Seq       int64     `json:"seq"`
	Kind      string    `json:"kind"`
	SubjectID string    `json:"subject_id,omitempty"`
	Time      time.Time `json:"time"`
	Reason    string    `json:"reason,omitempty"`
	ActorID   string    `json:"actor_id,omitempty"`
	Voids     int64     `json:"voids,omitempty"`
	Prev      string    `json:"prev"`
	Hash      string    `json:"hash"`
}

func (e *Entry) sum() (string, error) {
	c := *e
	c.Hash = ""
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(hashPrefix))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// File is a ledger file. It is safe for concurrent use.
type File struct {
	path string
	mu   sync.Mutex
	// The last entry appended through this File, valid while the file
	// still has size.
	size     int64
	lastSeq  int64
	lastHash string
	now      func() time.Time
	// held is the file the lines written unsynced went to, kept open
	// (unlocked) until Sync, so that Sync puts those very lines on disk
	// even if the path has been replaced meanwhile; nil when every line
	// written through this File is synced. heldInfo identifies it.
	held     *os.File
	heldInfo os.FileInfo
	// broken is the first failed fsync: Linux may have dropped what it
	// was to write and marked it clean, so a later fsync proves nothing
	// about those lines, and the File refuses every append and Sync from
	// then on (reopen it, as a restart does).
	broken error
	syncs  int64
}

// Open returns the ledger at path, creating it (mode 0600) and its
// directory if needed, and checks it can be written.
func Open(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, failed(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, failed(err)
	}
	if err := f.Close(); err != nil {
		return nil, failed(err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, failed(err)
	}
	return &File{path: path, size: -1, now: time.Now}, nil
}

// Path returns the file's path.
func (l *File) Path() string { return l.path }

func failed(err error) error {
	return &custos.Error{Code: custos.EINTERNAL, Message: "The shred ledger cannot be written.", Err: fmt.Errorf("ledger: %w", err)}
}

// AppendErase records an erasure and returns its seq once the line is on
// disk. An error means nothing may be erased.
func (l *File) AppendErase(e custos.ShredEntry) (int64, error) {
	return l.append(eraseEntry(e), true)
}

// AppendEraseUnsynced writes an erasure's line and returns its seq at
// once; the line is on disk only when a later Sync has returned nil. The
// erasures that share one commit write their lines so and sync the
// ledger once before the commit, instead of once a line (BENCHMARKS.md,
// thirty-seventh session). An error means nothing may be erased.
func (l *File) AppendEraseUnsynced(e custos.ShredEntry) (int64, error) {
	return l.append(eraseEntry(e), false)
}

func eraseEntry(e custos.ShredEntry) Entry {
	return Entry{Kind: KindErase, SubjectID: string(e.SubjectID), Time: e.ShredAt.UTC(), Reason: e.Reason, ActorID: string(e.ActorID)}
}

// AppendVoid records that erase entry seq did not commit.
func (l *File) AppendVoid(seq int64) error {
	_, err := l.append(Entry{Kind: KindVoid, Voids: seq, Time: l.now().UTC().Truncate(time.Microsecond)}, true)
	return err
}

// Sync puts every line written through l on disk: one fsync for all the
// lines written unsynced since the last, and none when there are none.
// Lines are written and synced under one lock. An error means the lines
// written since the last Sync may be lost: their erasures must not
// commit.
func (l *File) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return l.broken
	}
	return l.syncHeld()
}

// Syncs returns how many fsyncs of the file l has made.
func (l *File) Syncs() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.syncs
}

// syncHeld fsyncs and closes the held file, if any; l.mu is held.
func (l *File) syncHeld() error {
	if l.held == nil {
		return nil
	}
	f := l.held
	l.held, l.heldInfo = nil, nil
	err := l.fsync(f)
	if cerr := f.Close(); cerr != nil && err == nil {
		err = failed(cerr)
	}
	return err
}

// syncFile is fsync(2); a test makes it fail.
var syncFile = (*os.File).Sync

// fsync syncs f; a failure breaks l for good. l.mu is held.
func (l *File) fsync(f *os.File) error {
	if err := syncFile(f); err != nil {
		l.size = -1
		l.broken = failed(err)
		return l.broken
	}
	l.syncs++
	return nil
}

func (l *File) append(e Entry, sync bool) (seq int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		return 0, l.broken
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return 0, failed(err)
	}
	hold := false // f becomes the held file, closed by a later Sync
	defer func() {
		if hold {
			return
		}
		if cerr := f.Close(); cerr != nil && err == nil {
			err = failed(cerr)
		}
	}()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, failed(err)
	}
	// Released before returning (closing the file would too, but a held
	// file stays open): another process appends meanwhile.
	defer func() {
		if uerr := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); uerr != nil && err == nil {
			err = failed(uerr)
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return 0, failed(err)
	}
	if fi.Size() != l.size {
		if l.lastSeq, l.lastHash, err = tail(f, fi.Size()); err != nil {
			return 0, failed(err)
		}
	}
	e.Seq, e.Prev = l.lastSeq+1, l.lastHash
	if e.Hash, err = e.sum(); err != nil {
		return 0, failed(err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return 0, failed(err)
	}
	line := append(b, '\n')
	if fi.Size() > 0 {
		// A torn last line (a crash inside a write, whose erasure never
		// committed) is ended first, so this entry starts a line.
		var last [1]byte
		if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil {
			return 0, failed(err)
		}
		if last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err := f.Write(line); err != nil {
		l.size = -1
		return 0, failed(err)
	}
	switch {
	case sync:
		// The lines written unsynced before it too: by this fsync when
		// they went to the same file, else by the held file's first.
		if l.held != nil && os.SameFile(l.heldInfo, fi) {
			_ = l.held.Close() // the same file: f's fsync covers its lines
			l.held, l.heldInfo = nil, nil
		} else if err := l.syncHeld(); err != nil {
			return 0, err
		}
		if err := l.fsync(f); err != nil {
			return 0, err
		}
	case l.held == nil:
		l.held, l.heldInfo, hold = f, fi, true
	case !os.SameFile(l.heldInfo, fi):
		// The path names another file now: the held one's lines are
		// synced, and this file is held instead.
		if err := l.syncHeld(); err != nil {
			return 0, err
		}
		l.held, l.heldInfo, hold = f, fi, true
	}
	l.size, l.lastSeq, l.lastHash = fi.Size()+int64(len(line)), e.Seq, e.Hash
	return e.Seq, nil
}

// tail returns the seq and hash of the last whole entry of the file.
func tail(f *os.File, size int64) (int64, string, error) {
	const window = 64 << 10
	for off := max(0, size-window); ; off = max(0, off-window) {
		buf := make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return 0, "", err
		}
		lines := bytes.Split(buf, []byte{'\n'})
		if off > 0 {
			lines = lines[1:] // may start mid-line
		}
		for i := len(lines) - 1; i >= 0; i-- {
			var e Entry
			if len(bytes.TrimSpace(lines[i])) == 0 || json.Unmarshal(lines[i], &e) != nil || e.Hash == "" {
				continue
			}
			return e.Seq, e.Hash, nil
		}
		if off == 0 {
			return 0, "", nil
		}
	}
}

// Read is the content of one ledger file, its chain checked.
type Read struct {
	Path    string
	Entries []Entry
	// Torn counts lines that are not entries (a write cut by a crash);
	// they are skipped, and the chain goes on over them.
	Torn int
}

// ReadFile reads and checks a ledger file. A broken chain (a line edited,
// removed or reordered) is EINVALID naming the line.
func ReadFile(path string) (*Read, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &custos.Error{Code: custos.ENOTFOUND, Message: fmt.Sprintf("The shred ledger %s does not exist.", path), Err: err}
		}
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "The shred ledger cannot be read.", Err: err}
	}
	defer f.Close()
	out := &Read{Path: path}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prev := ""
	var seq int64
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Hash == "" {
			out.Torn++
			continue
		}
		want, err := e.sum()
		if err != nil || want != e.Hash {
			return nil, custos.Errorf(custos.EINVALID, "The shred ledger %s is altered: line %d does not match its hash.", path, line)
		}
		if e.Prev != prev || e.Seq != seq+1 {
			return nil, custos.Errorf(custos.EINVALID, "The shred ledger %s is broken at line %d: an entry before it was removed, reordered or edited.", path, line)
		}
		if e.Kind != KindErase && e.Kind != KindVoid {
			return nil, custos.Errorf(custos.EINVALID, "The shred ledger %s has an entry of unknown kind at line %d.", path, line)
		}
		prev, seq = e.Hash, e.Seq
		out.Entries = append(out.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, &custos.Error{Code: custos.EINVALID, Message: fmt.Sprintf("The shred ledger %s cannot be read.", path), Err: err}
	}
	return out, nil
}

// Erasures returns the erase entries of the files that no void entry of
// the same file cancels, in time order.
func Erasures(files ...*Read) []Entry {
	var out []Entry
	for _, r := range files {
		voided := map[int64]bool{}
		for _, e := range r.Entries {
			if e.Kind == KindVoid {
				voided[e.Voids] = true
			}
		}
		for _, e := range r.Entries {
			if e.Kind == KindErase && !voided[e.Seq] {
				out = append(out, e)
			}
		}
	}
	sortByTime(out)
	return out
}

// sortByTime sorts stably, so entries of one file keep their order at
// equal times.
func sortByTime(es []Entry) {
	slices.SortStableFunc(es, func(a, b Entry) int { return a.Time.Compare(b.Time) })
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	if cerr := d.Close(); serr == nil {
		serr = cerr
	}
	return serr
}
