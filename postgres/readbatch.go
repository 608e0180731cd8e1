package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"custos/internal/sqlutil"
)

// A PostgreSQL read by id is one statement (readSubject), and most of its
// cost is not the statement's work but the round trip around it: the
// protocol's messages, the loopback or network sockets on both sides, and
// waking the server's backend process (BENCHMARKS.md, thirty-ninth
// session: 176 µs of server time a read, about 575 µs of the machine's
// outside custos). Reads that arrive while others are on their way share
// one statement instead: readBatcher sends at most maxReadBatches
// statements at once, and each statement that comes back takes with it the
// reads queued meanwhile, all of them in one `WHERE s.id IN (…)`. A read
// that finds a statement free goes at once, alone, so a lone reader waits
// for nothing; under load the reads gather, as commit groups do.
//
// A batched read sees the latest committed data at its statement's start,
// which is after the read was asked for: what a Glance's one statement
// promises.

// maxReadBatches is how many batched read statements a node sends at once.
const maxReadBatches = 2

// maxReadBatch bounds the reads in one statement (batchReadSQL's longest
// list).
const maxReadBatch = 64

// batchReadSQL[i] reads up to 1<<i subjects, each with its data key and
// consent history, their rows subject by subject; only each subject's
// first row carries its sealed fields.
//
// The ids go as 1<<i parameters, the last repeated to fill the list,
// rather than as one array: PostgreSQL plans `s.id = ANY($1)` for an
// array of unknown length as if it held ten ids, so it never settles on
// the generic plan and plans the statement again at every execution
// (about 0.3 ms of its CPU, more than the statement's work), where a list
// of n parameters is planned for n both ways and the plan is kept. The
// index scan reads a repeated id once.
var batchReadSQL = func() (qs [7]string) {
	read := sqlutil.SubjectReadSQL(`CASE WHEN row_number() OVER (PARTITION BY s.id ORDER BY c.seq) = 1 THEN s.sealed END`)
	for i := range qs {
		ps := make([]string, 1<<i)
		for j := range ps {
			ps[j] = fmt.Sprintf("$%d", j+1)
		}
		qs[i] = read + ` WHERE s.id IN (` + strings.Join(ps, ", ") + `) ORDER BY s.id, c.seq`
	}
	// A read alone: readSubject's statement, without the partition and
	// the sort by id.
	qs[0] = subjectReadSQL + ` WHERE s.id = $1 ORDER BY c.seq`
	return qs
}()

// readBatcher gathers concurrent reads by id (see above).
type readBatcher struct {
	pool    *sql.DB
	timeout time.Duration

	mu    sync.Mutex
	busy  int // statements on their way
	queue []*batchedRead

	// statements and reads count what went (ReadBatchStats).
	statements, reads atomic.Int64
}

// batchedRead is one read waiting for its statement.
type batchedRead struct {
	id   string
	done chan struct{} // closed when read and err are set
	read *sqlutil.SubjectRead
	err  error
}

// read returns the subject id with its key and consent history, or
// sql.ErrNoRows. ctx bounds only the wait: a statement carries the reads of
// others too, so it runs under the query timeout alone.
func (b *readBatcher) read(ctx context.Context, id string) (*sqlutil.SubjectRead, error) {
	r := &batchedRead{id: id}
	b.mu.Lock()
	if b.busy < maxReadBatches {
		b.busy++
		b.mu.Unlock()
		b.send([]*batchedRead{r})
		b.next()
		return r.read, r.err
	}
	r.done = make(chan struct{})
	b.queue = append(b.queue, r)
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.read, r.err
	case <-ctx.Done():
		// The statement goes on for the others; this read's answer is
		// dropped when it comes.
		return nil, ctx.Err()
	}
}

// next hands the queued reads to a statement of their own, sent by a new
// goroutine so that the read whose statement just came back is answered
// now, or frees the statement's place when none wait.
func (b *readBatcher) next() {
	if batch := b.take(); batch != nil {
		go func() {
			for batch != nil {
				b.send(batch)
				batch = b.take()
			}
		}()
	}
}

// take removes up to maxReadBatch queued reads of distinct subjects and
// returns them, or frees a statement's place and returns nil when none
// wait. A second read of a subject already taken stays queued for the next
// statement, so that each read gets rows of its own.
func (b *readBatcher) take() []*batchedRead {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.busy--
		return nil
	}
	var batch, rest []*batchedRead
	seen := make(map[string]bool, len(b.queue))
	for _, r := range b.queue {
		if len(batch) == maxReadBatch || seen[r.id] {
			rest = append(rest, r)
			continue
		}
		seen[r.id] = true
		batch = append(batch, r)
	}
	b.queue = rest
	return batch
}

// send reads the subjects of batch in one statement and answers each read:
// its subject's rows, sql.ErrNoRows when there were none, or the
// statement's error.
func (b *readBatcher) send(batch []*batchedRead) {
	size := 0
	for 1<<size < len(batch) {
		size++
	}
	ids := make([]any, 1<<size)
	for i := range ids {
		ids[i] = batch[min(i, len(batch)-1)].id
	}
	var reads []*sqlutil.SubjectRead
	err := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		defer cancel()
		rows, err := b.pool.QueryContext(ctx, batchReadSQL[size], ids...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if reads, err = sqlutil.ScanSubjectRow(rows, reads); err != nil {
				return err
			}
		}
		return rows.Err()
	}()
	b.statements.Add(1)
	b.reads.Add(int64(len(batch)))
	byID := make(map[string]*sqlutil.SubjectRead, len(reads))
	if err == nil {
		for _, sr := range reads {
			byID[string(sr.Subject.ID)] = sr
		}
	}
	for _, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case byID[r.id] == nil:
			r.err = sql.ErrNoRows
		default:
			r.read = byID[r.id]
		}
		if r.done != nil {
			close(r.done)
		}
	}
}
