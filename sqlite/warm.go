package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// Warming the read cache after a start.
//
// A process starts with an empty read cache, and a large store's pages
// are not in the kernel's page cache either: on a 10,000,000-customer
// node the first seconds' reads took 2–5 times as long as once the cache
// had filled (BENCHMARKS.md, thirtieth and thirty-first sessions). So a
// server writes the ids of the customers its read cache holds to a file
// beside the database (SaveReadCacheList: every few minutes and when it
// stops), and the next start reads those customers back into the cache
// in the background (WarmReadCache), as PostgreSQL's autoprewarm does
// with its buffer list. The file holds subject ids only (the audit log
// holds the same), never a stored value; a missing or damaged file only
// means a cold start.

// warmListSuffix names the list beside the database file.
const warmListSuffix = "-readcache"

// warmListHeader is the list's first line.
const warmListHeader = "custos read cache v1"

// warmBatch is how many customers one read transaction of the warm-up
// reads, in id order (ids begin with their creation time, so neighbouring
// ids tend to share B-tree pages). warmWorkers read batches side by side:
// on a cold disk each page is one pread, and several in flight keep the
// disk busy; two leave the other read connections (readConns) to live
// reads.
const (
	warmBatch   = 32
	warmWorkers = 2
)

// warmAfterRead, when set (by tests), runs after the warm-up read each
// customer, inside the batch's read transaction.
var warmAfterRead func(custos.SubjectID)

// WarmListPath is where SaveReadCacheList writes and WarmReadCache reads.
func (db *DB) WarmListPath() string { return db.path + warmListSuffix }

// SaveReadCacheList writes the ids of the customers in the read cache to
// WarmListPath, those read since they were put or last passed over by an
// eviction first, and returns how many it wrote. It replaces the file
// whole (a new file renamed over it), so a crash leaves the old list or
// the new one. An empty or disabled cache writes nothing and leaves an
// existing list as it is: a process that read nobody has nothing better
// to offer the next start.
func (db *DB) SaveReadCacheList() (int, error) {
	c := db.rc
	if c == nil {
		return 0, nil
	}
	var read, rest []custos.SubjectID
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for id, e := range s.entries {
			if e.read {
				read = append(read, id)
			} else {
				rest = append(rest, id)
			}
		}
		s.mu.Unlock()
	}
	if len(read)+len(rest) == 0 {
		return 0, nil
	}
	path := db.WarmListPath()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".readcache-*")
	if err != nil {
		return 0, internal("save read cache list", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	w := bufio.NewWriter(tmp)
	fmt.Fprintln(w, warmListHeader)
	for _, l := range [][]custos.SubjectID{read, rest} {
		for _, id := range l {
			w.WriteString(string(id))
			w.WriteByte('\n')
		}
	}
	err = errors.Join(w.Flush(), tmp.Chmod(0o600), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return 0, internal("save read cache list", err)
	}
	return len(read) + len(rest), nil
}

// WarmReadCache reads the customers listed in WarmListPath into the read
// cache, warmWorkers batches at a time, calling progress (when not nil)
// after each batch with the figures so far, from one goroutine at a
// time. It stops when the list ends or when ctx ends (then it returns
// ctx's error with the figures so far). Without a list, or with the
// cache off, it does nothing and returns no error; a list that is not one (a wrong header, a line that is not a subject id)
// is an error naming the line, and nothing is read.
//
// What it reads goes through the same fill as a read that misses the
// cache (readSubject): a change committed meanwhile is never shadowed by
// an older copy. It decrypts nothing, decides nothing and answers nobody,
// so it writes no audit event. It does not count in the cache's hits and
// misses, and never evicts: a shard that is full is left as it is.
func (db *DB) WarmReadCache(ctx context.Context, progress func(sqlutil.WarmStats)) (sqlutil.WarmStats, error) {
	var st sqlutil.WarmStats
	c := db.rc
	if c == nil {
		return st, nil
	}
	start := time.Now()
	limit := c.max * cacheShards
	ids, listed, err := readWarmList(db.WarmListPath(), limit)
	if err != nil || listed == 0 {
		return st, err
	}
	st.Listed, st.Skipped = listed, listed-len(ids)
	slices.Sort(ids)
	return sqlutil.WarmBatches(ctx, ids, warmBatch, warmWorkers, st, start,
		func(b []custos.SubjectID) (sqlutil.WarmStats, error) { return db.warmBatch(ctx, c, b) }, progress)
}

// warmBatch reads the customers ids in one read transaction, and counts
// them in the returned stats.
func (db *DB) warmBatch(ctx context.Context, c *readCache, ids []custos.SubjectID) (sqlutil.WarmStats, error) {
	var st sqlutil.WarmStats
	_, err := db.view(ctx, func(t custos.Tx) error {
		tx := t.(*Tx)
		for _, id := range ids {
			switch c.room(id) {
			case sqlutil.RoomCached:
				st.Cached++
				continue
			case sqlutil.RoomFull:
				st.Skipped++
				continue
			}
			if _, err := tx.readSubject(ctx, id); custos.ErrorCode(err) == custos.ENOTFOUND {
				st.Gone++
			} else if err != nil {
				return err
			} else {
				st.Loaded++
				c.warmed.Add(1)
			}
			if warmAfterRead != nil {
				warmAfterRead(id)
			}
		}
		return nil
	}, false)
	return st, err
}

// room reports whether id's shard has room for its entry, or holds it.
func (c *readCache) room(id custos.SubjectID) sqlutil.Room {
	s := c.shard(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.entries[id]; ok {
		return sqlutil.RoomCached
	}
	if len(s.entries) >= c.max {
		return sqlutil.RoomFull
	}
	return sqlutil.RoomFree
}

// readWarmList reads the list at path, keeping its first limit ids, and
// returns them with the number it lists: none (no error) when there is
// no file.
func readWarmList(path string, limit int) ([]custos.SubjectID, int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	} else if err != nil {
		return nil, 0, internal("read cache list", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var (
		ids    []custos.SubjectID
		listed int
	)
	for line := 1; sc.Scan(); line++ {
		t := sc.Text()
		switch {
		case line == 1:
			if t != warmListHeader {
				return nil, 0, warmListError(path, line, "is not the header "+fmt.Sprintf("%q", warmListHeader))
			}
		case custos.ValidID("sub", t):
			if listed++; len(ids) < limit {
				ids = append(ids, custos.SubjectID(t))
			}
		default:
			// The line is not quoted: a damaged file could hold anything.
			return nil, 0, warmListError(path, line, "is not a subject id")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, internal("read cache list", err)
	}
	return ids, listed, nil
}

func warmListError(path string, line int, rule string) error {
	return custos.Invalid(fmt.Sprintf("Read cache list %s, line %d, %s.", path, line, rule),
		custos.Violation{Field: "read cache list", Rule: rule, Detail: fmt.Sprintf("line %d", line)})
}
