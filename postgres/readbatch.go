package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// A PostgreSQL read by id or by lookup key is one statement (readSubject),
// and most of its cost is not the statement's work but the round trip
// around it: the protocol's messages, the loopback or network sockets on
// both sides, and waking the server's backend process (BENCHMARKS.md,
// thirty-ninth session: 176 µs of server time a read, about 575 µs of the
// machine's outside custos). Reads that arrive while others are on their
// way share one statement instead: a readBatcher sends at most
// maxReadBatches statements at once, and each statement that comes back
// takes with it the reads queued meanwhile, all of them in one
// `WHERE … IN (…)`. A read that finds a statement free goes at once,
// alone, so a lone reader waits for nothing; under load the reads gather,
// as commit groups do. Reads by id and lookups have a batcher each.
//
// A batched read sees the latest committed data at its statement's start,
// which is after the read was asked for: what a Glance's one statement
// promises.

// maxReadBatches is how many batched read statements of one kind a node
// sends at once.
const maxReadBatches = 2

// maxReadBatch bounds the reads in one statement (the longest list of
// readKind.sql), and readLists is how many lists a kind has: of 1, 2, 4
// … maxReadBatch asks.
const (
	maxReadBatch = 64
	readLists    = 7
)

// A readKind is what a batcher's reads ask for: sql[i] answers up to 1<<i
// asks, each ask's parameters in turn (params of them), the last ask's
// repeated to fill the list; every row starts with the ask's parameters it
// answers (lead columns), then a subject's columns, ordered ask by ask,
// and only each ask's first row carries the subject's sealed fields.
//
// The asks go as a list of parameters rather than as arrays: PostgreSQL
// plans `s.id = ANY($1)` for an array of unknown length as if it held ten
// ids, so it never settles on the generic plan and plans the statement
// again at every execution (about 0.3 ms of its CPU, more than the
// statement's work), where a list of n is planned for n both ways and the
// plan is kept. The index scans read a repeated ask once.
type readKind struct {
	params int
	sql    [readLists]string
}

// readsByID reads subjects by id.
var readsByID = newReadKind(1, "s.id", "s.id", "subjects s")

// readsByKey reads the subjects that own blind-index keys (field, hash).
var readsByKey = newReadKind(2, "l.field, l.hash", "(l.field, l.hash)",
	"lookups l CROSS JOIN LATERAL (SELECT * FROM subjects WHERE id = l.subject_id OFFSET 0) s")

// readGenSQL is the read cache generation (readcache.go), in every row
// after the lead columns: the statement's snapshot's, as its rows are; 0
// (never cached) should its row be missing.
const readGenSQL = `COALESCE((SELECT gen FROM cache_gen), 0)`

// readJoins joins each subject's data key and consents by a probe of
// their index, one subject at a time. As plain joins, planned for a list
// of asks on tables not analysed since they grew (a store just loaded,
// before autovacuum comes round), PostgreSQL read the whole consents table
// into a hash for eight customers (TestReadBatchPlans); OFFSET 0 keeps it
// from turning the subqueries back into such joins.
const readJoins = `
	LEFT JOIN LATERAL (SELECT * FROM data_keys WHERE subject_id = s.id OFFSET 0) k ON true
	LEFT JOIN LATERAL (SELECT * FROM consents WHERE subject_id = s.id OFFSET 0) c ON true`

// newReadKind builds the statements of a kind whose asks are the columns
// cols (params of them; match is how a list compares with them), the
// subjects coming from from.
func newReadKind(params int, cols, match, from string) *readKind {
	k := &readKind{params: params}
	for i := range k.sql {
		sealed, where, order := `CASE WHEN row_number() OVER (PARTITION BY `+cols+` ORDER BY c.seq) = 1 THEN s.sealed END`, "", cols+", c.seq"
		if i == 0 {
			// One ask: no partition, and nothing to order by but the
			// consents.
			sealed, order = `CASE WHEN row_number() OVER (ORDER BY c.seq) = 1 THEN s.sealed END`, "c.seq"
		}
		asks := make([]string, 1<<i)
		for a := range asks {
			ps := make([]string, params)
			for p := range ps {
				ps[p] = fmt.Sprintf("$%d", a*params+p+1)
			}
			asks[a] = strings.Join(ps, ", ")
			if params > 1 {
				asks[a] = "(" + asks[a] + ")"
			}
		}
		if i == 0 && params == 1 {
			where = cols + ` = $1`
		} else {
			where = match + ` IN (` + strings.Join(asks, ", ") + `)`
		}
		k.sql[i] = sqlutil.SubjectReadSelect(cols+", "+readGenSQL+", ", sealed) + ` FROM ` + from + readJoins + ` WHERE ` + where + ` ORDER BY ` + order
	}
	return k
}

// readBatcher gathers concurrent reads of one kind (see above).
type readBatcher struct {
	kind    *readKind
	pool    *sql.DB
	timeout time.Duration

	mu    sync.Mutex
	busy  int // statements on their way
	queue []*batchedRead

	// statements and reads count what went (GroupStats), dropped the
	// queued reads whose callers gave up before a statement took them.
	statements, reads, dropped atomic.Int64
}

// batchedRead is one read waiting for its statement.
type batchedRead struct {
	ask  string // its parameters, joined: what rows answering it lead with
	args []any
	ctx  context.Context // the caller's: once done, the read is not sent
	done chan struct{}   // closed when read, gen and err are set
	read *sqlutil.SubjectRead
	gen  int64 // the read cache generation the statement saw
	err  error
}

// read returns the subject that args ask for (kind.params of them) with
// its key and consent history, and the read cache generation its
// statement saw, or sql.ErrNoRows. A read sent alone runs
// under ctx; a queued read's ctx bounds only its wait, because its
// statement carries the reads of others too and runs under the query
// timeout alone.
func (b *readBatcher) read(ctx context.Context, args ...any) (*sqlutil.SubjectRead, int64, error) {
	r := &batchedRead{ask: askKey(args), args: args, ctx: ctx}
	b.mu.Lock()
	if b.busy < maxReadBatches {
		b.busy++
		b.mu.Unlock()
		// Alone in its statement, the read goes under its caller's
		// context, as a statement of its own did.
		b.send(ctx, []*batchedRead{r})
		b.next()
		return r.read, r.gen, r.err
	}
	r.done = make(chan struct{})
	b.queue = append(b.queue, r)
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.read, r.gen, r.err
	case <-ctx.Done():
		// The statement goes on for the others; this read's answer is
		// dropped when it comes.
		return nil, 0, ctx.Err()
	}
}

// glanceRead sends a Glance's one statement, a read by id or a lookup,
// with other Glances' through b (tx.sent is then set), keeps the data key
// and consents read with the customer for GetDataKey and ListConsentsFor,
// and returns the customer; ENOTFOUND names entity.
//
// With a read cache, the answer goes in it, tagged with the cache
// generation the statement saw (readcache.go), and the caller gets a copy.
func (tx *Tx) glanceRead(ctx context.Context, b *readBatcher, entity string, args ...any) (*custos.StoredSubject, error) {
	tx.sent = true
	r, gen, err := b.read(ctx, args...)
	if err != nil {
		return nil, formatError(err, entity)
	}
	if tx.rc != nil {
		field, hash := "", []byte(nil)
		if b.kind == readsByKey {
			field, hash = args[0].(string), args[1].([]byte)
		}
		if tx.rc.put(r, gen, field, hash) && field == "" && tx.kf != nil {
			tx.kf.note(r.Subject.ID) // its keys, for lookups (keyfill.go)
		}
	}
	tx.reads.Keep(r)
	return r.Subject, nil
}

// cacheAnswer answers a Glance's one read with r, which the read cache
// holds as of gen, as glanceRead answers with a statement's, and notes gen
// in the read's proof.
func (tx *Tx) cacheAnswer(p *custos.ReadProof, r *sqlutil.SubjectRead, gen int64) *custos.StoredSubject {
	tx.sent = true
	p.Gen = gen
	tx.reads.Keep(r)
	return r.Subject
}

// askKey joins an ask's parameters (strings and byte slices, or the
// byte slices a row's lead columns were scanned into) into one string: a
// read's and the rows answering it give the same.
func askKey(args []any) string {
	var sb strings.Builder
	for _, a := range args {
		switch v := a.(type) {
		case string:
			sb.WriteString(v)
		case []byte:
			sb.Write(v)
		case *[]byte:
			sb.Write(*v)
		default:
			panic(fmt.Sprintf("postgres: a batched read's parameter is a %T", a))
		}
		sb.WriteByte(0)
	}
	return sb.String()
}

// next hands the queued reads to a statement of their own, sent by a new
// goroutine so that the read whose statement just came back is answered
// now, or frees the statement's place when none wait.
func (b *readBatcher) next() {
	if batch := b.take(); batch != nil {
		go func() {
			for batch != nil {
				b.send(context.Background(), batch)
				batch = b.take()
			}
		}()
	}
}

// take removes up to maxReadBatch queued reads of distinct asks and
// returns them, or frees a statement's place and returns nil when none
// wait. A second read of an ask already taken stays queued for the next
// statement, so that each read gets rows of its own. Reads whose callers
// have given up are dropped, so that a queue that grew while the
// database did not answer holds only reads someone waits for.
func (b *readBatcher) take() []*batchedRead {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch, rest []*batchedRead
	seen := make(map[string]bool, len(b.queue))
	for _, r := range b.queue {
		if r.ctx.Err() != nil {
			b.dropped.Add(1)
			continue
		}
		if len(batch) == maxReadBatch || seen[r.ask] {
			rest = append(rest, r)
			continue
		}
		seen[r.ask] = true
		batch = append(batch, r)
	}
	b.queue = rest
	if len(batch) == 0 {
		b.busy--
		return nil
	}
	return batch
}

// send reads what batch asks for in one statement, under ctx and the query
// timeout, and answers each read: the rows that lead with its ask,
// sql.ErrNoRows when there were none, or the statement's error.
func (b *readBatcher) send(ctx context.Context, batch []*batchedRead) {
	size := listSize(len(batch))
	args := make([]any, 0, (1<<size)*b.kind.params)
	for i := range 1 << size {
		args = append(args, batch[min(i, len(batch)-1)].args...)
	}
	c := newAskRows(b.kind.params)
	err := func() error {
		ctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		rows, err := b.pool.QueryContext(ctx, b.kind.sql[size], args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := c.scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}()
	byAsk := c.byAsk
	b.statements.Add(1)
	b.reads.Add(int64(len(batch)))
	for _, r := range batch {
		switch {
		case err != nil:
			r.err = err
		case byAsk[r.ask] == nil:
			r.err = sql.ErrNoRows
		default:
			r.read, r.gen = byAsk[r.ask], c.gen
		}
		if r.done != nil {
			close(r.done)
		}
	}
}

// idAsks returns the list size (listSize) and the parameters of a
// readsByID statement for ids (at most maxReadBatch), the last repeated to
// fill the list.
func idAsks(ids []custos.SubjectID) (int, []any) {
	size := listSize(len(ids))
	args := make([]any, 1<<size)
	for i := range args {
		args[i] = string(ids[min(i, len(ids)-1)])
	}
	return size, args
}

// listSize is the i of the shortest list of readKind.sql[i] that holds n
// asks (n at most maxReadBatch).
func listSize(n int) int {
	size := 0
	for 1<<size < n {
		size++
	}
	return size
}

// askRows collects the rows of a readKind statement: each ask's
// customer, by the ask its rows lead with.
type askRows struct {
	lead  []any // a *[]byte for each lead column
	gen   int64 // the read cache generation, after the lead columns
	dests []any // lead, then &gen
	cur   *sqlutil.SubjectRead
	last  string
	byAsk map[string]*sqlutil.SubjectRead
}

func newAskRows(params int) *askRows {
	c := &askRows{lead: make([]any, params), byAsk: map[string]*sqlutil.SubjectRead{}}
	for i := range c.lead {
		c.lead[i] = new([]byte)
	}
	c.dests = append(slices.Clip(c.lead), &c.gen)
	return c
}

// scan reads one row, onto the read of the ask it leads with.
func (c *askRows) scan(s scanner) error {
	var row sqlutil.SubjectRow
	if err := row.Scan(s, slices.Clip(c.dests)...); err != nil {
		return err
	}
	if ask := askKey(c.lead); c.cur == nil || ask != c.last {
		c.cur, c.last = &sqlutil.SubjectRead{}, ask
		c.byAsk[ask] = c.cur
	}
	return c.cur.Add(&row)
}

// PrefetchSubjects implements custos.SubjectPrefetcher in a read-only
// transaction (View): the subjects of ids, each with its data key and
// consent history, in one statement for each 64 (readsByID's), where
// GetSubject took one each; GetSubject, GetDataKey and ListConsentsFor
// then answer from them, GetSubject with ENOTFOUND for an id the
// statement did not find. Elsewhere it does nothing.
func (tx *Tx) PrefetchSubjects(ctx context.Context, ids []custos.SubjectID) error {
	if tx.write || tx.glance {
		return nil
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), maxReadBatch)]
		ids = ids[len(chunk):]
		size, args := idAsks(chunk)
		c := newAskRows(readsByID.params)
		if err := tx.query(ctx, readsByID.sql[size], args, c.scan); err != nil {
			return formatError(err, "Subject")
		}
		if tx.prefetched == nil {
			tx.prefetched = map[custos.SubjectID]*custos.StoredSubject{}
		}
		for _, id := range chunk {
			// Not found in this snapshot: nil, ENOTFOUND for GetSubject.
			tx.prefetched[id] = nil
		}
		for _, r := range c.byAsk {
			tx.reads.Keep(r)
			tx.prefetched[r.Subject.ID] = r.Subject
		}
	}
	return nil
}

var _ custos.SubjectPrefetcher = (*Tx)(nil)
