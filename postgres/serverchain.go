package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"custos"
	"custos/audit"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A group's end in one round trip, its events chained on the server
// (BENCHMARKS.md, fortieth session).
//
// A group's end holds the append lock, which every group of every node
// waits for. The usual end holds it across two round trips: one takes it
// and brings the chain head here, the node hashes the group's events onto
// it, the other writes them and commits. Here instead one batch sends the
// lock, SAVEPOINT c, the shred entries, one statement that reads the head
// and chains and inserts the events on the server (serverChainSQL: the
// SHA-256 of the bytes audit.Hash hashes, from audit.HashPrefix and
// audit.Tail), and COMMIT; the lock is held for the server's work and the
// commit flush alone. The head is read under the lock in the transaction
// that inserts after it, as in the usual end, so nothing is guessed.
//
// core signs a checkpoint at every CheckpointEvery-th event, at the end,
// where it knows the event's seq; here the seqs are known only on the
// server. core's end work runs first on the head this node last wrote (a
// hint), and says the interval (NoteCheckpointEvery); a checkpoint that
// hint puts in the group sends the group the usual way, and the statement
// fails (division by zero) when a seq it gives is a multiple of the
// interval. That failure rolls back to c, keeping the members' work and
// the lock, and the group ends the usual way, where core signs it.
//
// A group of creates has its members' inserts still queued (deferred)
// at its end; they go first in the same batch (fiftieth session: until
// then such a group took the usual end, the inserts going with the lock
// and the head read). The batch commits before the node reads their
// rows, so each goes in a strict form that PostgreSQL itself refuses
// where the node's check of its row would fail (insertNewSubjectStrict):
// a taken lookup key then aborts the transaction, the COMMIT rolls back,
// and the group runs again without deferring, as before.

// keptHint is the chain head the node's last group end wrote: where its
// next end's work chains its events before the server chains them again.
type keptHint struct {
	mu   sync.Mutex
	seq  int64
	hash []byte
	// sent and fellBack count the ends sent in one round trip and those
	// that then went the usual way (GroupStats).
	sent, fellBack atomic.Int64
}

func (k *keptHint) get() (int64, []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.seq, bytes.Clone(k.hash)
}

func (k *keptHint) set(seq int64, hash []byte) {
	k.mu.Lock()
	if seq > k.seq {
		k.seq, k.hash = seq, bytes.Clone(hash)
	}
	k.mu.Unlock()
}

// errOneTrip refuses a statement while a group's end work runs before
// the lock: the end goes the usual way instead.
var errOneTrip = errors.New("postgres: a statement in a group end sent in one round trip")

// NoteCheckpointEvery records core's checkpoint interval for the end of
// this transaction (see above); 0: no checkpoints.
func (tx *Tx) NoteCheckpointEvery(n int64) { tx.checkpointEvery = n }

// serverChainSQL chains the events given as arrays (their tails in $10)
// after the head it reads, inserts them, and returns their seqs, previous
// hashes and hashes. $11 is the genesis hash, $12 audit.HashPrefix and
// $13 the checkpoint interval (0: none): a seq that is a multiple of it
// fails the statement with division_by_zero.
const serverChainSQL = `WITH RECURSIVE ev AS (
	SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[])
		WITH ORDINALITY AS e(time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, tail, i)
), head AS (
	SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1
), chain(i, seq, prev, hash) AS (
	SELECT 0::bigint, COALESCE((SELECT seq FROM head), 0::bigint), NULL::bytea, COALESCE((SELECT hash FROM head), $11::bytea)
	UNION ALL
	SELECT c.i + 1, c.seq + 1, c.hash, sha256($12::bytea || int8send(length(c.hash)::bigint) || c.hash || int8send(c.seq + 1) || ev.tail)
	FROM chain c JOIN ev ON ev.i = c.i + 1
)
INSERT INTO audit_events (` + auditColumns + `)
SELECT c.seq, ev.time, ev.actor_id, ev.action, ev.subject_id, ev.fields::jsonb, ev.purposes::jsonb, ev.decision, ev.reason, ev.request_id, c.prev, c.hash
FROM chain c JOIN ev ON ev.i = c.i
WHERE c.i > 0 AND 1 / (CASE WHEN $13::bigint > 0 AND c.seq % $13::bigint = 0 THEN 0 ELSE 1 END) = 1
ORDER BY c.seq
RETURNING seq, prev_hash, hash`

// chainArgs are serverChainSQL's arguments for events.
func chainArgs(events []*custos.AuditEvent, every int64) ([]any, error) {
	cols, err := eventColumns(events)
	if err != nil {
		return nil, err
	}
	tails := make([][]byte, len(events))
	for i, e := range events {
		tails[i] = audit.Tail(e)
	}
	return append(cols, tails, audit.Genesis, audit.HashPrefix(), every), nil
}

// oneTripOutcome is how an end in one round trip went.
type oneTripOutcome int

const (
	oneTripNotSent  oneTripOutcome = iota // nothing was sent: end the usual way
	oneTripEnded                          // the batch ran to its COMMIT: tag and err say how it went
	oneTripFellBack                       // a checkpoint is due: the lock is held, c rolled back to
)

// oneTripSavepoint is the savepoint before the chaining statement.
const oneTripSavepoint = "c"

// oneTripRollbackSQL undoes the chaining statement, keeping the lock.
const oneTripRollbackSQL = "ROLLBACK TO " + oneTripSavepoint

// oneTripEnd runs the group's end work on the hint and, unless it asks
// for a statement of its own, sends the end in one batch (see above).
// first is the transaction control that goes before the lock. With
// oneTripFellBack the transaction holds the lock and stands where it
// stood before the batch's SAVEPOINT; end the group the usual way after
// ROLLBACK TO it.
func (tx *Tx) oneTripEnd(ctx context.Context, conn *sql.Conn, first string, hint *keptHint) (oneTripOutcome, string, error) {
	seq, hash := hint.get()
	end := &endPhase{known: true, seq: seq, hash: hash}
	tx.oneTrip = true
	err := tx.runEnds(ctx, end)
	tx.oneTrip, tx.end = false, nil
	if err != nil || len(end.events) == 0 || len(end.events) > flushBatch || len(end.shreds) > flushBatch {
		// A statement at the end (a checkpoint), a failure the usual
		// way will meet again, or nothing to chain: nothing was sent.
		return oneTripNotSent, "", nil
	}
	queued := tx.deferred
	for _, d := range queued {
		if d.strict == "" {
			return oneTripNotSent, "", nil
		}
	}
	tx.async = tx.async && len(end.shreds) == 0
	args, err := chainArgs(end.events, tx.checkpointEvery)
	if err != nil {
		return oneTripNotSent, "", nil
	}
	hint.sent.Add(1)
	// The deferred statements go first, in their strict form: the batch
	// commits before their rows are read, so a conflict must abort the
	// transaction on the server. Sent, they leave the queue, whatever
	// becomes of the batch.
	tx.deferred = nil
	// derr is a deferred statement's failure, which PostgreSQL reported:
	// the transaction is aborted. committedMaybe: one failed otherwise,
	// and the batch may have committed.
	var (
		derr           error
		committedMaybe bool
	)
	ctx, cancel := context.WithTimeout(ctx, tx.timeout)
	defer cancel()
	var (
		tag      string
		fellBack bool
		rows     []chained
	)
	err = conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		controls := strings.Split(first, "; ")
		if tx.async {
			controls = append(controls, asyncCommitSQL)
		}
		controls = append(controls, lockAppendSQL)
		// The read cache's check and bump (readcache.go) go before c:
		// a checkpoint's fallback keeps them.
		controls = append(append(controls, tx.endSQL()...), "SAVEPOINT "+oneTripSavepoint)
		b := &pgx.Batch{}
		queueDeferred(b, queued, true)
		for _, q := range controls {
			b.Queue(q)
		}
		if len(end.shreds) > 0 {
			b.Queue(insertShredsSQL, shredArgs(end.shreds)...)
		}
		b.Queue(serverChainSQL, args...)
		b.Queue(commitSQL)
		br := c.SendBatch(ctx, b)
		// A failure PostgreSQL reports aborts the transaction: it skips
		// the rest of the batch, its COMMIT included, and the group runs
		// again without deferring (commitGroup). Any other failure here
		// (the connection lost, a row that fails its check though the
		// server took it) leaves the batch's outcome unknown: the group
		// fails as a whole and is not run again, lest what committed be
		// inserted twice.
		if err, raw := readDeferred(br, queued); err != nil {
			if derr, committedMaybe = serverRefused(raw); committedMaybe && raw == nil {
				err = internal("deferred insert", fmt.Errorf("its row failed the check the strict form makes on the server: %w", err))
			}
			return errors.Join(err, br.Close())
		}
		for range controls {
			if _, err := br.Exec(); err != nil {
				return errors.Join(err, br.Close())
			}
		}
		// As in commitEvents: every result is read, and the COMMIT's
		// tag says whether the transaction committed.
		var serr, ierr error
		if len(end.shreds) > 0 {
			serr = readSeqs(br, end.shreds)
		}
		if rows, ierr = readChained(br); ierr != nil {
			var pe *pgconn.PgError
			if serr == nil && errors.As(ierr, &pe) && pe.Code == "22012" {
				// A checkpoint is due: the rest was skipped, and Close
				// reads to the batch's end, with this error again.
				fellBack = true
				_ = br.Close()
				return nil
			}
		}
		tag, err = commitOutcome(br, serr, ierr)
		return err
	})
	switch {
	case derr != nil:
		return oneTripEnded, "", &errDeferred{err}
	case committedMaybe:
		return oneTripEnded, "", err
	}
	if len(queued) > 0 && tx.flushed != nil {
		tx.flushed.Add(int64(len(queued)))
	}
	if fellBack || tag == "COMMIT" {
		tx.locks.Add(1) // the lock statement ran
	}
	if fellBack {
		hint.fellBack.Add(1)
		// The entries' inserts were rolled back with c: their seqs are
		// the usual end's to set.
		for _, e := range end.shreds {
			e.Seq = 0
		}
		return oneTripFellBack, "", nil
	}
	if err == nil && tag == "COMMIT" && len(rows) == len(end.events) {
		// The callers' events as stored: the hint's seqs and hashes
		// were the work's only.
		for i, e := range end.events {
			e.Seq, e.PrevHash, e.Hash = rows[i].seq, rows[i].prev, rows[i].hash
		}
		last := rows[len(rows)-1]
		hint.set(last.seq, last.hash)
	}
	return oneTripEnded, tag, err
}

// serverRefused sorts a failure of a statement in a batch: err itself
// when PostgreSQL reported it (the transaction is then aborted, and the
// rest of the batch skipped), else unknown.
func serverRefused(err error) (refused error, unknown bool) {
	if errors.As(err, new(*pgconn.PgError)) {
		return err, false
	}
	return nil, true
}

// chained is one event as serverChainSQL stored it.
type chained struct {
	seq        int64
	prev, hash []byte
}

// readChained reads serverChainSQL's rows, in seq order.
func readChained(br pgx.BatchResults) ([]chained, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []chained
	for rows.Next() {
		var c chained
		if err := rows.Scan(&c.seq, &c.prev, &c.hash); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b chained) int { return int(a.seq - b.seq) })
	for i := 1; i < len(out); i++ {
		if out[i].seq != out[i-1].seq+1 {
			return nil, fmt.Errorf("audit events: chained seqs %d then %d", out[i-1].seq, out[i].seq)
		}
	}
	return out, nil
}
