package postgres

import (
	"context"
	"strings"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// Warming the read cache after a start.
//
// A node starts with an empty read cache, and until reads have filled it
// each read by id or lookup is a statement: on the sixtieth session's host
// a read step ran at 3,300–3,600 reads a second while its cache filled,
// against 6,200–6,400 with it full, and a miss cost the node about 300 µs
// of CPU more than a hit (BENCHMARKS.md). A SQLite node warms its cache
// from a list it writes beside its file (sqlite/warm.go). A PostgreSQL
// node needs no file of its own: the audit log already records, newest
// last, which customers the nodes' reads and lookups answered. So
// WarmReadCache reads the customers of the latest granted reads and
// lookups back into the cache, in the background, the most recent first,
// and with each customer their blind-index keys, so that lookups are
// answered from the cache too, as a running node's reads by id load them
// (keyfill.go; until the sixty-second session only the keys of customers
// a lookup had found).
//
// What it reads goes into the cache exactly as a read's statement does:
// tagged with the cache generation the statement saw, so that an entry is
// used only while no change has committed since (readcache.go). It
// decrypts nothing, decides nothing and answers nobody, so it writes no
// audit event; it counts in neither the hits nor the misses, and never
// evicts: a full shard is left as it is.

// warmScanWindow is how many audit events one statement of the list
// reads (a range of seq, by the primary key), and warmScanFactor how far
// back the list looks, in events for each customer the cache holds: a log
// whose latest events are mostly of other kinds (an import, a retention
// run) gives a shorter list rather than a long scan.
const (
	warmScanWindow = 8192
	warmScanFactor = 8
)

// warmWorkers read batches of maxReadBatch customers side by side, as at
// most maxReadBatches statements of the live reads by id do.
const warmWorkers = 2

// warmActions are the audit events whose customers the list takes: those
// a read cache entry would have answered.
var warmActions = []string{custos.AuditSubjectRead, custos.AuditSubjectLookup}

// recentReads returns the distinct customers of the latest granted reads
// and lookups in the audit log, the most recent first, at most limit of
// them, looking back at most limit × warmScanFactor events.
func (db *DB) recentReads(ctx context.Context, limit int) ([]custos.SubjectID, error) {
	var top int64
	if err := db.pool.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM audit_events`).Scan(&top); err != nil {
		return nil, internal("read cache list", err)
	}
	floor := max(0, top-int64(limit)*warmScanFactor)
	seen := map[custos.SubjectID]bool{}
	var ids []custos.SubjectID
	q := `SELECT subject_id FROM audit_events
		WHERE seq > $1 AND seq <= $2 AND action IN ('` + strings.Join(warmActions, "', '") + `')
			AND decision = '` + custos.DecisionAllow + `' AND subject_id <> ''
		ORDER BY seq DESC`
	for hi := top; hi > floor && len(ids) < limit; hi -= warmScanWindow {
		err := db.warmQuery(ctx, q, []any{max(floor, hi-warmScanWindow), hi}, func(s scanner) error {
			var id string
			if err := s.Scan(&id); err != nil {
				return err
			}
			if sid := custos.SubjectID(id); !seen[sid] && len(ids) < limit {
				seen[sid] = true
				ids = append(ids, sid)
			}
			return nil
		})
		if err != nil {
			return nil, internal("read cache list", err)
		}
	}
	return ids, nil
}

// WarmReadCache reads the customers of the audit log's latest granted
// reads and lookups into the read cache (see above), warmWorkers batches
// at a time, calling progress (when not nil) after each batch with the
// figures so far, from one goroutine at a time. It stops when the list
// ends or when ctx ends (then it returns ctx's error with the figures so
// far). With the cache off, or an audit log without reads, it does
// nothing and returns no error.
func (db *DB) WarmReadCache(ctx context.Context, progress func(sqlutil.WarmStats)) (sqlutil.WarmStats, error) {
	var st sqlutil.WarmStats
	c := db.rc
	if c == nil {
		return st, nil
	}
	start := time.Now()
	ids, err := db.recentReads(ctx, c.max*readCacheShards)
	if err != nil || len(ids) == 0 {
		return st, err
	}
	st.Listed = len(ids)
	return sqlutil.WarmBatches(ctx, ids, maxReadBatch, warmWorkers, st, start,
		func(b []custos.SubjectID) (sqlutil.WarmStats, error) { return db.warmBatch(ctx, c, b) }, progress)
}

// warmBatch reads the customers ids (at most maxReadBatch) in one
// statement, as a batch of reads by id does, and their blind-index keys
// in another, puts what it read in c where there is room, and counts it.
func (db *DB) warmBatch(ctx context.Context, c *readCache, ids []custos.SubjectID) (sqlutil.WarmStats, error) {
	var st sqlutil.WarmStats
	var ask []custos.SubjectID
	for _, id := range ids {
		switch c.room(id) {
		case sqlutil.RoomCached:
			st.Cached++
		case sqlutil.RoomFull:
			st.Skipped++
		default:
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 {
		return st, nil
	}
	size, args := idAsks(ask)
	reads := newAskRows(readsByID.params)
	if err := db.warmQuery(ctx, readsByID.sql[size], args, reads.scan); err != nil {
		return st, formatError(err, "Subject")
	}
	// The keys go in once their owner is in the cache:
	// a key whose owner found no room would only send its lookup to the
	// tables after a search of the cache.
	var owners []custos.SubjectID
	for _, id := range ask {
		r := reads.byAsk[askKey([]any{string(id)})]
		if r == nil {
			st.Gone++
			continue
		}
		switch c.warm(r, reads.gen) {
		case sqlutil.RoomFree:
			st.Loaded++
			c.warmed.Add(1)
		case sqlutil.RoomCached:
			st.Cached++
		default:
			st.Skipped++
			continue
		}
		owners = append(owners, id)
	}
	if len(owners) == 0 {
		return st, nil
	}
	n, err := db.loadKeys(ctx, c, owners)
	st.Keys += n
	return st, err
}

// keysByOwner[i] reads the blind-index keys of up to 1<<i customers, as
// readsByID's statements read the customers (the last id repeated to fill
// the list, so that a node prepares seven statements, not one for each
// length).
var keysByOwner = func() (sql [readLists]string) {
	for i := range sql {
		marks := make([]string, 1<<i)
		for m := range marks {
			marks[m] = sqlutil.DollarPlaceholder(m)
		}
		sql[i] = `SELECT field, hash, subject_id, ` + readGenSQL + ` FROM lookups WHERE subject_id IN (` + strings.Join(marks, ", ") + `)`
	}
	return sql
}()

// loadKeys reads the blind-index keys of owners (at most maxReadBatch) in
// one statement and puts each in c, tagged with the statement's gen, where
// there is room (readCache.keepKey, evicting nothing), for the warm-up and
// the key fill (keyfill.go); it returns how many it put.
func (db *DB) loadKeys(ctx context.Context, c *readCache, owners []custos.SubjectID) (int, error) {
	size, args := idAsks(owners)
	put := 0
	err := db.warmQuery(ctx, keysByOwner[size], args,
		func(s scanner) error {
			var (
				field, owner string
				hash         []byte
				gen          int64
			)
			if err := s.Scan(&field, &hash, &owner, &gen); err != nil {
				return err
			}
			if c.warmKey(field, hash, custos.SubjectID(owner), gen) {
				put++
			}
			return nil
		})
	if err != nil {
		return put, formatError(err, "Lookup key")
	}
	return put, nil
}

// warmQuery runs a warm-up statement on a pooled connection, outside any
// transaction (as a Glance's read does), under the query timeout, calling
// row for each row.
func (db *DB) warmQuery(ctx context.Context, query string, args []any, row func(scanner) error) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	rows, err := db.pool.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// room reports whether id's shard holds an entry for it of the gen the
// node knows, or has no room for one.
func (c *readCache) room(id custos.SubjectID) sqlutil.Room {
	known := c.known.Load()
	s := c.shard(string(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byID[id]; ok && e.gen == known {
		return sqlutil.RoomCached
	} else if ok {
		return sqlutil.RoomFree // an older gen's entry: replaced, not evicted
	}
	if len(s.byID) >= c.max {
		return sqlutil.RoomFull
	}
	return sqlutil.RoomFree
}

// warm puts r, read by a statement that saw gen, in the cache as put does,
// but evicts nothing (readCache.keep).
func (c *readCache) warm(r *sqlutil.SubjectRead, gen int64) sqlutil.Room {
	return c.keep(r, gen, false)
}

// warmKey puts the blind-index key (field, hash) of owner, read by a
// statement that saw gen, in the cache as put does for a lookup, but
// evicts nothing (readCache.keepKey); it reports whether it did.
func (c *readCache) warmKey(field string, hash []byte, owner custos.SubjectID, gen int64) bool {
	return c.keepKey(field, hash, owner, gen, false)
}
