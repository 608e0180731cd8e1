package sqlite

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Commits made durable beside the writer.
//
// With synchronous=FULL, SQLite syncs the WAL inside every COMMIT, and the
// writer goroutine waited for that fsync before it could begin the next
// group. On this host an fsync takes 150–230 µs and much of a read's
// audit commit was that wait: with the fsync left out altogether (an
// experiment, never a build), reads at c=16 ran 87 % faster
// (BENCHMARKS.md, twenty-fifth session).
//
// So a commit group's COMMIT writes its frames but leaves the WAL's sync
// to the syncer goroutine, and its callers are answered only after the
// syncer's next fsync of the WAL. The writer goes on to the next group
// meanwhile, and one fsync covers every group committed before it began.
// Nothing is acknowledged before it is on disk, as before:
//
//   - A WAL is one file written in order, and an fsync of it covers every
//     frame written before the call, whichever descriptor makes it. The
//     syncer opens the WAL itself. Recovery keeps a prefix of the WAL:
//     frames carry cumulative checksums, and the first that fails ends it.
//   - Only the sync SQLite makes at the end of a commit group's COMMIT is
//     left (durability.deferring, set around that call alone). The sync
//     after a new WAL header (a restarted WAL) is made at once: without it,
//     frames of the new WAL could reach the disk before their header and
//     an old frame could be replayed (SQLite's ticket ff5be73dee). The
//     checkpoints' syncs, of the WAL before it is copied and of the
//     database file after, are made at once too: they run on other
//     connections, or between groups.
//   - SQLite shows a commit to other connections once its frames are
//     written, so a reader may see a group before the syncer has synced
//     it. A read by id or lookup key (Glance) may show it: core answers
//     such a read only after committing its audit event, whose sync
//     covers everything before it. View waits, after fn, until every
//     group committed by then is synced; so does Dump. Another process on
//     the same file can read a group that is not yet on disk (docs/deploy.md).
//   - Unless the store was opened with Options.ReadAuditCommitted: then
//     a group that changed nothing but the audit log (reads, lookups,
//     denials: requests whose only write is their audit event) is
//     answered once committed, when nothing it may have read is still
//     to be synced (answerEarly), and the syncer waits up to
//     earlySyncDelay before the fsync that makes such groups durable,
//     so that one fsync serves several milliseconds of reads. A power
//     loss or kernel crash in that window may lose those audit events
//     (never a change to data, and never a break in the chain: recovery
//     keeps a prefix of the WAL); a crash of custos loses nothing, as
//     the frames are written.
//   - A failed fsync may have lost what it was to write, and Linux marks
//     those pages clean, so a later fsync would succeed without writing
//     them. The store then fails every later write and every read that
//     might show what was lost, until it is opened again.
//
// The write connection names its durability to walVFS with a pragma in
// its connection string (durablePragma), and walSync finds it by the
// connection's libc.TLS, which modernc's driver keeps per connection. A
// connection that has not named one (every other connection) syncs at
// once.
type durability struct {
	id   uint64
	path string // the WAL's

	// bound is set when a write connection names this durability.
	bound atomic.Bool
	// deferring is set by the writer around a commit group's COMMIT.
	deferring atomic.Bool
	// deferred counts the syncs walSync left to the syncer.
	deferred atomic.Uint64
	// issued counts the commits begun; durable is the count of those
	// answered as on disk. Only the writer advances issued, before it
	// commits, so a snapshot that sees a commit loads issued ≥ its number.
	issued, durable atomic.Uint64
	// syncs counts the fsyncs the syncer made (WriterStats).
	syncs atomic.Uint64

	mu    sync.Mutex
	queue []answers
	err   error         // the first failed sync; every later answer is refused
	round chan struct{} // closed after each round, then replaced

	wake     chan struct{}
	urgent   chan struct{} // a caller waits: the syncer must not delay
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	wal    *os.File // opened at the first deferred sync
	synced uint64   // deferred at the last fsync

	// early is Options.ReadAuditCommitted; gen the store's shared
	// counters, whose data counter says whether anything but audit
	// events was committed since dataSynced, the value it had before
	// the last fsync began, plus one (zero: no fsync yet). earlyGroups
	// counts the groups answered before their sync (WriterStats).
	early       bool
	gen         *sharedGen
	dataSynced  atomic.Uint64
	earlyGroups atomic.Uint64
}

// earlySyncDelay is how long the syncer may wait, with only groups
// already answered to sync (Options.ReadAuditCommitted), before it syncs
// them; a group that waits for its sync, a View or Close ends the wait.
const earlySyncDelay = 5 * time.Millisecond

// answers are a commit group's callers, to be answered once the commits
// up to seq are on disk.
type answers struct {
	seq   uint64
	group []*writeReq
	errs  []error
}

// durablePragma is the pragma by which a write connection names its
// durability (walvfs.go). SQLite hands a pragma it does not know to the
// database file's xFileControl (SQLITE_FCNTL_PRAGMA), with the
// connection's TLS.
const durablePragma = "custos_durability"

// walDataSync syncs the WAL; a test may replace it.
var walDataSync = func(f *os.File) error { return f.Sync() }

// durables holds each open store's durability by id, for walVFS.
var (
	durables  sync.Map // uint64 → *durability
	durableID atomic.Uint64
)

func newDurability(path string) *durability {
	d := &durability{id: durableID.Add(1), path: path + "-wal", round: make(chan struct{}),
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	durables.Store(d.id, d)
	return d
}

// dsnParam is the write connection string's parameter naming d.
func (d *durability) dsnParam() string {
	return "&_pragma=" + durablePragma + "(" + strconv.FormatUint(d.id, 10) + ")"
}

// durableByName returns the durability a pragma's argument names.
func durableByName(arg string) *durability {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return nil
	}
	if v, ok := durables.Load(id); ok {
		return v.(*durability)
	}
	return nil
}

// commit runs commit (a commit group's COMMIT) with its sync left to the
// syncer.
func (d *durability) commit(commit func() error) error {
	d.issued.Add(1)
	d.deferring.Store(true)
	defer d.deferring.Store(false)
	return commit()
}

// answer queues a group's callers: the syncer answers them once every
// commit begun so far is on disk. Only the writer calls it, after the
// group's commit or its failure; wrote says whether the group may have
// changed anything but the audit log. A group answered early
// (answerEarly) is queued without its callers, for its sync.
func (d *durability) answer(group []*writeReq, errs []error, wrote bool) {
	a := answers{seq: d.issued.Load()}
	d.mu.Lock()
	early := d.err == nil && d.answerEarly(wrote)
	if !early {
		a.group, a.errs = group, errs
	}
	d.queue = append(d.queue, a)
	d.mu.Unlock()
	switch {
	case early:
		d.earlyGroups.Add(1)
		for i, r := range group {
			r.done <- errs[i]
		}
	case d.early:
		nudge(d.urgent) // only a lingering syncer reads it
	}
	nudge(d.wake)
}

// answerEarly says whether a group may be answered before its sync: the
// store answers audit-only groups once committed, this one changed
// nothing but the audit log, and no commit that did, by this process or
// another on the file, has been made since the last fsync began or is
// under way (sharedGen.settledData). What the group's requests read was
// committed before the group, so it is on disk.
func (d *durability) answerEarly(wrote bool) bool {
	if !d.early || wrote {
		return false
	}
	synced := d.dataSynced.Load()
	data, settled := d.gen.settledData()
	return synced != 0 && settled && data == synced-1
}

// nudge signals ch without blocking.
func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onlyEarly says whether every group queued was answered already, so the
// syncer may wait before syncing them (earlySyncDelay).
func (d *durability) onlyEarly() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.queue {
		if len(a.group) > 0 {
			return false
		}
	}
	return len(d.queue) > 0
}

// failed returns the failed sync's error, if one failed.
func (d *durability) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// wait returns once every commit begun before the call is on disk.
func (d *durability) wait(ctx context.Context) error {
	need := d.issued.Load()
	for {
		if d.durable.Load() >= need {
			return nil
		}
		d.mu.Lock()
		err, round := d.err, d.round
		done := d.durable.Load() >= need
		d.mu.Unlock()
		switch {
		case done:
			return nil
		case err != nil:
			return err
		}
		nudge(d.urgent)
		select {
		case <-round:
		case <-ctx.Done():
			return internal("wait for the disk", ctx.Err())
		}
	}
}

// run is the syncer goroutine. It answers what is queued at each wake,
// and everything left once stop is closed.
func (d *durability) run() {
	defer close(d.done)
	defer func() {
		if d.wal != nil {
			_ = d.wal.Close()
		}
	}()
	for {
		select {
		case <-d.wake:
			if d.early && d.onlyEarly() {
				d.linger()
			}
			d.flush()
		case <-d.stop:
			d.flush()
			return
		}
	}
}

// linger waits up to earlySyncDelay, or until a caller waits for a sync
// or the store closes.
func (d *durability) linger() {
	t := time.NewTimer(earlySyncDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-d.urgent:
	case <-d.stop:
	}
}

// flush syncs the WAL if a commit left its sync since the last one, and
// answers the groups queued before it began.
func (d *durability) flush() {
	d.mu.Lock()
	batch := d.queue
	d.queue = nil
	err := d.err
	d.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	// A caller that asked for this flush is served by it: its request
	// must not cut short the next group's wait (linger). A View asks
	// again after each round.
	select {
	case <-d.urgent:
	default:
	}
	// Loaded after the batch was taken: every sync its commits left is
	// counted, and their frames are written.
	if n := d.deferred.Load(); err == nil && n != d.synced {
		// Before the fsync: a data commit counted by now wrote its
		// frames before it was counted, and this fsync covers them.
		data := d.gen.loadData()
		if err = d.sync(); err == nil {
			d.synced = n
			d.syncs.Add(1)
			d.dataSynced.Store(data + 1)
		} else {
			err = internal("sync", err)
		}
	}
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	if d.err == nil {
		d.durable.Store(batch[len(batch)-1].seq)
	}
	close(d.round)
	d.round = make(chan struct{})
	d.mu.Unlock()
	for _, a := range batch {
		for i, r := range a.group {
			e := a.errs[i]
			if e == nil && err != nil {
				e = err
			}
			r.done <- e
		}
	}
}

// sync syncs the WAL, opening it first if need be. The writer's
// connection keeps the WAL open, so SQLite neither deletes nor replaces
// it while the store is open; it only truncates it.
func (d *durability) sync() error {
	if d.wal == nil {
		f, err := os.OpenFile(d.path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		d.wal = f
	}
	return walDataSync(d.wal)
}

// close stops the syncer once it has answered everything queued, and
// forgets d.
func (d *durability) close() {
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.done
	durables.Delete(d.id)
}
