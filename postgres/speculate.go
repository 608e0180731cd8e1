package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A group's end in one round trip (BENCHMARKS.md, fortieth session).
//
// A group's end holds the append lock, which every group of every node
// waits for, from the round trip that takes it and reads the chain head,
// through the hashing of the group's events here, to the round trip that
// writes them and commits, flush included. With statistics, a PostgreSQL
// read step at c=16 keeps that lock busy nearly all the time, so its hold
// bounds the rate of every audited request.
//
// The node keeps the head its last group end sent (keptHead). A group
// hashes its events onto that head before it has the lock and sends, in
// one batch: the savepoint's release (or BEGIN), the lock, SAVEPOINT s,
// a check that fails unless the chain's head is the kept one, the shred
// entries, the events and COMMIT. The head is read and compared under
// the lock, in the transaction that inserts after it, so the chain cannot
// fork whatever the kept head says; the kept head only decides whether
// the group goes in one round trip. When the check fails (another node
// appended, or the group this one built on did not commit), PostgreSQL
// skips the rest of the batch; ROLLBACK TO s keeps the members' work and
// the lock, and the group reads the head and ends as before: one round
// trip more than before, not the group run again. After a failed check
// the next specSkipAfterMiss group ends do not speculate, so a node whose
// head other nodes keep moving loses little.
//
// The other writer of the node may build on a head before the group that
// sent it has committed: its lock waits for that commit, and its check
// then finds the head it built on. If that commit fails, its check fails.

// specSkipAfterMiss is how many group ends go the usual way after a
// speculative end's check failed.
const specSkipAfterMiss = 16

// keptHead is the chain head the node's last group end sent.
type keptHead struct {
	mu   sync.Mutex
	ok   bool
	seq  int64
	hash []byte
	skip int // group ends left that do not speculate
	// tried and missed count the speculative ends sent and those whose
	// check failed (GroupStats).
	tried, missed atomic.Int64
}

// take returns the kept head for a group's end to build on, and whether
// it may (a head is kept and no miss asked to skip this end).
func (k *keptHead) take() (seq int64, hash []byte, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.skip > 0 {
		k.skip--
		return 0, nil, false
	}
	return k.seq, bytes.Clone(k.hash), k.ok
}

// set keeps the head a group's end is about to send.
func (k *keptHead) set(seq int64, hash []byte) {
	k.mu.Lock()
	k.ok, k.seq, k.hash = true, seq, bytes.Clone(hash)
	k.mu.Unlock()
}

// forget drops the kept head (a group's end failed, or its check did);
// with miss, the next specSkipAfterMiss ends do not speculate.
func (k *keptHead) forget(miss bool) {
	k.mu.Lock()
	k.ok = false
	if miss {
		k.skip = specSkipAfterMiss
	}
	k.mu.Unlock()
}

// errSpeculating refuses a statement while a group's end runs on the kept
// head without the lock: the end goes the usual way instead.
var errSpeculating = errors.New("postgres: a statement in a speculative group end")

// specSavepoint is the savepoint before the check.
const specSavepoint = "s"

// headCheckSQL fails with division_by_zero unless the chain's head is
// seq $1 with hash $2.
const headCheckSQL = `SELECT 1 / (SELECT count(*)::int FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) h
	WHERE h.seq = $1 AND h.hash = $2)`

// specOutcome is how a speculative end went.
type specOutcome int

const (
	specNotTried specOutcome = iota // nothing was sent: end the usual way
	specEnded                       // the batch ran to its COMMIT: tag and err say how it went
	specMissed                      // the check failed: the lock is held, s rolled back to
)

// speculativeEnd runs the group's end work on the kept head and sends it
// with the lock, the check and the COMMIT in one batch (see above). first
// is the transaction control that goes before the lock. With specMissed
// the transaction holds the lock and stands where it stood before the
// batch's SAVEPOINT; end the group the usual way after ROLLBACK TO it.
func (tx *Tx) speculativeEnd(ctx context.Context, conn *sql.Conn, first string, kept *keptHead) (specOutcome, string, error) {
	seq, hash, ok := kept.take()
	if !ok {
		return specNotTried, "", nil
	}
	end := &endPhase{known: true, seq: seq, hash: hash}
	tx.speculating = true
	err := tx.runEnds(ctx, end)
	tx.speculating, tx.end = false, nil
	if err != nil || len(end.events) == 0 || len(end.events) > flushBatch || len(end.shreds) > flushBatch {
		// A statement at the end (a checkpoint), a failure the usual
		// way will meet again, or nothing to chain: nothing was sent.
		return specNotTried, "", nil
	}
	eargs, err := eventArgs(end.events)
	if err != nil {
		return specNotTried, "", nil
	}
	kept.set(end.seq, end.hash)
	ctx, cancel := context.WithTimeout(ctx, tx.timeout)
	defer cancel()
	var (
		tag    string
		missed bool
	)
	err = conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		controls := append(strings.Split(first, "; "), lockAppendSQL, "SAVEPOINT "+specSavepoint)
		b := &pgx.Batch{}
		for _, q := range controls {
			b.Queue(q)
		}
		b.Queue(headCheckSQL, seq, hash)
		if len(end.shreds) > 0 {
			b.Queue(insertShredsSQL, shredArgs(end.shreds)...)
		}
		b.Queue(insertEventsSQL, eargs...)
		b.Queue(commitSQL)
		br := c.SendBatch(ctx, b)
		for range controls {
			if _, err := br.Exec(); err != nil {
				return errors.Join(err, br.Close())
			}
		}
		if _, err := br.Exec(); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "22012" {
				// The rest of the batch was skipped; Close reads up to
				// its end, and its error is this one again.
				missed = true
				_ = br.Close()
				return nil
			}
			return errors.Join(err, br.Close())
		}
		// As in commitEvents: every result is read, and the COMMIT's
		// tag says whether the transaction committed.
		var serr, ierr error
		if len(end.shreds) > 0 {
			serr = readSeqs(br, end.shreds)
		}
		_, ierr = br.Exec()
		ct, cerr := br.Exec()
		tag = ct.String()
		closeErr := br.Close()
		switch {
		case cerr == nil && closeErr == nil && tag == "COMMIT":
			return nil
		case serr != nil:
			return errors.Join(formatError(serr, "Shred entry"), closeErr)
		case ierr != nil:
			return errors.Join(formatError(ierr, "Audit event"), closeErr)
		}
		return errors.Join(cerr, closeErr)
	})
	kept.tried.Add(1)
	tx.locked = true
	switch {
	case missed:
		tx.locks.Add(1)
		kept.missed.Add(1)
		kept.forget(true)
		return specMissed, "", nil
	case err != nil || tag != "COMMIT":
		kept.forget(false)
	default:
		tx.locks.Add(1)
	}
	return specEnded, tag, err
}

// specRollbackSQL undoes the failed check, keeping the lock.
const specRollbackSQL = "ROLLBACK TO " + specSavepoint

// keptAfter keeps the head a group's usual end is about to send, for the
// next group to build on; done forgets it if the commit failed.
func keptAfter(kept *keptHead, end *endPhase) (done func(tag string, err error)) {
	if len(end.events) == 0 || !end.known {
		return func(string, error) {}
	}
	kept.set(end.seq, end.hash)
	return func(tag string, err error) {
		if err != nil || tag != "COMMIT" {
			kept.forget(false)
		}
	}
}
