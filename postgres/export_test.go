package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"custos"

	"github.com/jackc/pgx/v5"
)

// Pool exposes the connection pool to the external tests.
func (db *DB) Pool() *sql.DB { return db.pool }

// FormatError exposes the driver error translation to the external tests.
var FormatError = formatError

// MigrateLockKey and AppendLockKey expose the advisory lock keys.
const (
	MigrateLockKey = migrateLockKey
	AppendLockKey  = appendLockKey
)

// Redact exposes the password masking of Open's errors.
var Redact = redact

// UpdateAlone runs fn in a write transaction of its own, outside the
// commit groups (as Load does): a Tx that sends one statement a round
// trip.
func (db *DB) UpdateAlone(ctx context.Context, fn func(tx custos.Tx) error) error {
	return db.run(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, true, func(tx *Tx) error { return fn(tx) })
}

// FailSeqReads makes the reading of shred entries' seqs at a commit fail
// on this side, after draining the result, until the test ends. The hook
// is package-wide: a test that calls it must not run in parallel with
// others of this package.
func FailSeqReads(t interface{ Cleanup(func()) }) {
	old := readSeqs
	readSeqs = func(br pgx.BatchResults, es []*custos.ShredEntry) error {
		rows, err := br.Query()
		if err == nil {
			rows.Close()
			err = rows.Err()
		}
		return errors.Join(err, errors.New("test: seqs not read"))
	}
	t.Cleanup(func() { readSeqs = old })
}

// Queued returns how many Update calls wait for a group writer.
func (db *DB) Queued() int64 { return db.queued.Load() }

// LargestGroup returns the most members a group ran in one transaction.
func (db *DB) LargestGroup() int64 { return db.largest.Load() }

// Undeferred returns how many groups ran again without deferring.
func (db *DB) Undeferred() int64 { return db.undeferred.Load() }

// DeferredSent returns how many statements commit groups sent deferred.
func (db *DB) DeferredSent() int64 { return db.deferredSent.Load() }

// TxID returns the id of tx's transaction, assigning one if it has none,
// as PostgreSQL's xid type prints it.
func TxID(ctx context.Context, tx custos.Tx) (string, error) {
	var xid string
	err := tx.(*Tx).scanRow(ctx, `SELECT xid(pg_current_xact_id())::text`, nil, &xid)
	return xid, err
}

// HoldReadStatements takes every place for a batched read statement of
// one kind (lookups, or reads by id), as if that many were on their way,
// so that such reads queue (readbatch.go); the returned func frees one
// place, as a statement coming back does, and the queued reads go.
func (db *DB) HoldReadStatements(lookups bool) (release func()) {
	b := db.batcher(lookups)
	b.mu.Lock()
	b.busy += maxReadBatches
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.busy -= maxReadBatches - 1 // the drain frees the last one
		b.mu.Unlock()
		b.next()
	}
}

// QueuedReads returns how many reads of a kind wait for a statement.
func (db *DB) QueuedReads(lookups bool) int {
	b := db.batcher(lookups)
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

func (db *DB) batcher(lookups bool) *readBatcher {
	if lookups {
		return db.byKey
	}
	return db.byID
}

// ReadBatchSQL returns the statement of a batched read of up to 1<<size
// asks, lookups or by id, and the parameters an ask takes.
func ReadBatchSQL(lookups bool, size int) (string, int) {
	k := readsByID
	if lookups {
		k = readsByKey
	}
	return k.sql[size], k.params
}

// DroppedReads returns how many queued reads of a kind were dropped
// because their callers gave up.
func (db *DB) DroppedReads(lookups bool) int64 { return db.batcher(lookups).dropped.Load() }

// BusyReads returns how many statements of a kind are on their way.
func (db *DB) BusyReads(lookups bool) int {
	b := db.batcher(lookups)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.busy
}

// NoteKeys queues ids' keys to be loaded into the read cache, as reads by
// id that put them in it do (keyfill.go).
func (db *DB) NoteKeys(ids ...custos.SubjectID) {
	for _, id := range ids {
		db.kf.note(id)
	}
}

// KeyFill returns how many customers wait for their keys, whether a
// goroutine loads them, and how many were dropped.
func (db *DB) KeyFill() (queued int, running bool, dropped int64) {
	f := db.kf
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue), f.running, f.dropped.Load()
}

// MaxKeyFillQueue is maxKeyFillQueue.
const MaxKeyFillQueue = maxKeyFillQueue

// HoldKeyFill marks the key fill as running without a goroutine, so that
// notes only queue; the returned func starts the goroutine.
func (db *DB) HoldKeyFill() (release func()) {
	f := db.kf
	f.mu.Lock()
	f.running = true
	f.done.Add(1)
	f.mu.Unlock()
	return func() { go f.run() }
}

// SetJoinWait sets how long a group of read audits waits for another
// group's end on its way (latejoin.go).
func (db *DB) SetJoinWait(d time.Duration) { db.joinWait = d }

// EndsOnTheirWay counts this node's group ends sent and not yet answered.
func (db *DB) EndsOnTheirWay() int {
	db.ends.mu.Lock()
	defer db.ends.mu.Unlock()
	return db.ends.n
}
