package sqlite

import (
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"custos"
	"custos/internal/cacheblob"
	"custos/internal/sqlutil"
)

// DefaultReadCache is how many customers the read cache holds when
// Options.ReadCache is 0.
const DefaultReadCache = 50_000

// readCache keeps, per customer, what a read fetches before it decides
// and decrypts: the stored subject row (ciphertext), the wrapped data key,
// the whole consent history (one statement reads all three: readSubject),
// and the blind-index keys that led to the customer. It holds nothing the
// database file does not hold, and nothing in plaintext: decrypting still
// needs the master key, and shredding deletes the entry in the same step
// that commits the deletion.
//
// Only read transactions (View) use it, and only positive answers are
// kept. Coherence, in this process: every write transaction records the
// customers whose cached rows it changes (Tx.about); after it commits (or
// fails), and before its callers are answered, their entries are deleted
// and the generation advances. A View notes the generation when it
// starts and may fill an entry only if no invalidation happened since,
// so a row read from a snapshot older than a commit is never kept after
// that commit's invalidation. A statement that changes a cached table
// without naming its customer empties the whole cache.
//
// Across processes (custos retention run, keys rotate or another command
// on the same file while serve runs): every process that commits such a
// change advances a counter in a small shared file (DB-cachegen) after
// its commit, before it answers; a View that finds the counter moved by
// another process empties its cache first. A process killed between the
// commit and the advance is caught by its pending word (pendCache).
// Writing the file with other tools while custos runs is not supported
// (docs/deploy.md).
type readCache struct {
	max    int // per shard
	seed   maphash.Seed
	gen    atomic.Uint64 // local invalidations
	shards [cacheShards]cacheShard
	in     cacheblob.Interner // the entries' field names and consent words

	shared *sharedGen
	// seen is the shared counter's value this process has accounted for:
	// its own advances, and foreign ones after which it emptied itself.
	seen   atomic.Uint64
	bumpMu sync.Mutex

	hits, misses, flushes atomic.Uint64
	warmed                atomic.Uint64 // entries the warm-up put (warm.go)
}

// ReadCacheStats counts the read cache's answers for subject rows, how
// often it was emptied whole, and the customers a warm-up read into it
// (WarmReadCache).
type ReadCacheStats struct {
	Hits, Misses, Flushes, Warmed uint64
	Entries                       int
}

// ReadCacheStats reports the read cache's counters; all zero when it is
// off.
func (db *DB) ReadCacheStats() ReadCacheStats {
	c := db.rc
	if c == nil {
		return ReadCacheStats{}
	}
	st := ReadCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Flushes: c.flushes.Load(), Warmed: c.warmed.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += len(s.entries)
		s.mu.Unlock()
	}
	return st
}

const cacheShards = 16

type cacheShard struct {
	mu      sync.Mutex
	entries map[custos.SubjectID]cacheEntry
	lookups map[string]custos.SubjectID // field\x00hash → subject
}

// cacheEntry is one customer's entry: the stored subject row, its data
// key (none: GetDataKey asks the database) and every consent in recorded
// order, encoded as one pointer-free slice (internal/cacheblob), and the
// blind-index keys that led to the customer.
type cacheEntry struct {
	blob    []byte
	lookups []string
	// read is set when the entry answers a read and cleared when an
	// eviction passes it over (putSubject): a second chance.
	read bool
}

// cacheStamp is what a View notes at its start.
type cacheStamp struct {
	gen, shared uint64
}

func newReadCache(size int, shared *sharedGen) *readCache {
	per := max(size/cacheShards, 1)
	c := &readCache{max: per, seed: maphash.MakeSeed(), shared: shared}
	for i := range c.shards {
		c.shards[i].entries = map[custos.SubjectID]cacheEntry{}
		c.shards[i].lookups = map[string]custos.SubjectID{}
	}
	c.seen.Store(shared.load())
	return c
}

func (c *readCache) shard(id custos.SubjectID) *cacheShard {
	return &c.shards[maphash.String(c.seed, string(id))%cacheShards]
}

// begin is called when a View starts: it empties the cache if another
// process changed cached tables since it last looked, and returns the
// stamp that fills must match.
func (c *readCache) begin() cacheStamp {
	c.shared.repairDead()
	if c.shared.load() != c.seen.Load() {
		c.bumpMu.Lock()
		// Again under the lock: this process's own advance may have been
		// half done (counter moved, seen not yet) when first looked.
		if cur := c.shared.load(); cur != c.seen.Load() {
			c.flushAll()
			c.seen.Store(cur)
		}
		c.bumpMu.Unlock()
	}
	return cacheStamp{gen: c.gen.Load(), shared: c.shared.load()}
}

// valid reports whether nothing was invalidated since stamp; call it with
// the shard's lock held.
func (c *readCache) valid(stamp cacheStamp) bool {
	return c.gen.Load() == stamp.gen && c.shared.load() == stamp.shared
}

func (c *readCache) flushAll() {
	c.gen.Add(1)
	c.flushes.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.entries)
		clear(s.lookups)
		s.mu.Unlock()
	}
}

// advanceShared moves the shared counter for a change this process is
// committing, accounting for it so that this process does not empty
// itself; a foreign advance in between leaves seen behind, and the next
// View empties the cache.
func (c *readCache) advanceShared() {
	c.bumpMu.Lock()
	if v := c.shared.add(); v == c.seen.Load()+1 {
		c.seen.Store(v)
	}
	c.bumpMu.Unlock()
}

// invalidate deletes the entries of ids (all entries when all is set)
// after a write that changed them.
func (c *readCache) invalidate(inv *invalidation) {
	if inv.all {
		c.flushAll()
		return
	}
	c.gen.Add(1)
	for id := range inv.ids {
		s := c.shard(id)
		s.mu.Lock()
		var keys []string
		if e, ok := s.entries[id]; ok {
			keys = e.lookups
			delete(s.entries, id)
		}
		s.mu.Unlock()
		c.dropLookups(keys, id)
	}
}

// dropLookups deletes the blind-index mappings keys → id. The caller
// holds no shard lock: a mapping lives in the shard of its key, and two
// shard locks are never held at once.
func (c *readCache) dropLookups(keys []string, id custos.SubjectID) {
	for _, k := range keys {
		ks := c.keyShard(k)
		ks.mu.Lock()
		if ks.lookups[k] == id {
			delete(ks.lookups, k)
		}
		ks.mu.Unlock()
	}
}

func (c *readCache) keyShard(k string) *cacheShard {
	return &c.shards[maphash.String(c.seed, k)%cacheShards]
}

// getSubject returns a copy of id's cached subject row, or nil when id
// has no entry. An entry's bytes never change, so it is decoded outside
// the shard's lock.
func (c *readCache) getSubject(id custos.SubjectID) *custos.StoredSubject {
	s := c.shard(id)
	s.mu.Lock()
	e, ok := s.entries[id]
	if ok && !e.read {
		e.read = true
		s.entries[id] = e
	}
	s.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return cacheblob.Subject(e.blob, id, &c.in)
}

// evictProbe is how many entries an eviction looks at, at most, for one
// not read since it was last passed over.
const evictProbe = 8

// maxCachedHistory is the longest consent history the cache keeps; a
// customer with a longer one (a consent granted and withdrawn over and
// over) is read from the database each time, so that an entry stays near
// the 1.7 KiB or so docs/deploy.md sizes the cache by.
const maxCachedHistory = 64

// putSubject adds an entry for a subject row, its data key (nil: none)
// and its consent history, read together in a View stamped stamp. The
// entry is an encoding of them, which shares no memory with them.
func (c *readCache) putSubject(stamp cacheStamp, st *custos.StoredSubject, key *custos.DataKey, history []*custos.StoredConsent) {
	if len(history) > maxCachedHistory {
		return
	}
	e := cacheEntry{blob: cacheblob.Encode(st, key, history)}
	s := c.shard(st.ID)
	s.mu.Lock()
	if _, ok := s.entries[st.ID]; ok || !c.valid(stamp) {
		s.mu.Unlock()
		return
	}
	var (
		evicted custos.SubjectID
		keys    []string
	)
	if len(s.entries) >= c.max {
		// Evict one entry, giving a second chance to those read since
		// they were put or last passed over: from a random point of the
		// map (Go's iteration order), clear their marks and take the
		// first entry not read, or the last it looks at (the
		// evictProbe-th, or the shard's last when it holds fewer, so that
		// a shard whose entries were all read still evicts). A customer
		// read again and again then stays, where a random eviction was
		// as likely to drop it as any other (BENCHMARKS.md, thirtieth
		// session).
		n, probe := 0, min(evictProbe, len(s.entries))
		for id, e := range s.entries {
			if n++; !e.read || n == probe {
				evicted, keys = id, e.lookups
				delete(s.entries, id)
				break
			}
			e.read = false
			s.entries[id] = e
		}
	}
	s.entries[st.ID] = e
	s.mu.Unlock()
	c.dropLookups(keys, evicted)
}

// getKey returns the cached data key of id, or nil when id has no entry
// or its entry no key.
func (c *readCache) getKey(id custos.SubjectID) *custos.DataKey {
	s := c.shard(id)
	s.mu.Lock()
	e, ok := s.entries[id]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return cacheblob.Key(e.blob, id)
}

// getConsents returns the cached consents of id for purposes, in recorded
// order; false when id has no entry.
func (c *readCache) getConsents(id custos.SubjectID, purposes []string) ([]*custos.StoredConsent, bool) {
	s := c.shard(id)
	s.mu.Lock()
	e, ok := s.entries[id]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	return cacheblob.Consents(e.blob, id, purposes, &c.in), true
}

func lookupKey(field string, hash []byte) string { return field + "\x00" + string(hash) }

// getLookup answers a blind-index lookup from the cache. The mapping
// key → subject lives in the shard of the key; it counts only while that
// subject's entry lists the key (an entry starts with none, so a mapping
// left from before an invalidation, such as a mobile number since
// corrected, is never used).
func (c *readCache) getLookup(field string, hash []byte) (custos.SubjectID, bool) {
	k := lookupKey(field, hash)
	ks := c.keyShard(k)
	ks.mu.Lock()
	id, ok := ks.lookups[k]
	ks.mu.Unlock()
	if !ok {
		return "", false
	}
	s := c.shard(id)
	s.mu.Lock()
	e, ok := s.entries[id]
	vouched := ok && slices.Contains(e.lookups, k)
	s.mu.Unlock()
	if !vouched {
		c.dropLookups([]string{k}, id)
		return "", false
	}
	return id, true
}

// putLookup records that (field, hash) led to id, whose entry must exist:
// first on the entry, then in the key's shard (never both locks at once).
func (c *readCache) putLookup(stamp cacheStamp, field string, hash []byte, id custos.SubjectID) {
	k := lookupKey(field, hash)
	s := c.shard(id)
	s.mu.Lock()
	e, ok := s.entries[id]
	if !ok || !c.valid(stamp) || len(e.lookups) >= 8 {
		s.mu.Unlock()
		return
	}
	if !slices.Contains(e.lookups, k) {
		e.lookups = append(e.lookups, k)
		s.entries[id] = e
	}
	s.mu.Unlock()
	ks := c.keyShard(k)
	ks.mu.Lock()
	if len(ks.lookups) >= 8*c.max {
		clear(ks.lookups) // mappings whose entries went unnoticed; a bound
	}
	ks.lookups[k] = id
	ks.mu.Unlock()
}

// invalidation is what one write transaction changed in cached tables.
type invalidation struct {
	ids map[custos.SubjectID]struct{}
	all bool
}

func (inv *invalidation) empty() bool { return !inv.all && len(inv.ids) == 0 }

// cachedTables matches statements that change rows the read cache holds.
// Inserts of new subject, data key and lookup rows change no cached row
// (only rows that exist are cached), unless they replace one: INSERT OR
// REPLACE, REPLACE, or an upsert's DO UPDATE. INSERT OR FAIL (the verb of
// every multi-row insert, InsertMany), OR IGNORE, OR ABORT and OR ROLLBACK
// stop or skip at a conflict and change no row that was there; from the
// twenty-first session until the twenty-ninth they were taken for
// replacing ones, so every create and import emptied the whole cache and
// reads beside creates (the bench's mixed workload) found it empty.
var cachedTables = regexp.MustCompile(`(?is)^\s*(UPDATE\s+(OR\s+\w+\s+)?|DELETE\s+FROM\s+|INSERT\s+(OR\s+\w+\s+)?INTO\s+|REPLACE\s+INTO\s+)"?(subjects|data_keys|consents|lookups)"?[\s(]`)

var statementKinds sqlutil.QueryKinds // changes cached rows

// changesCached reports whether query may change a row the read cache
// holds.
func changesCached(query string) bool {
	return statementKinds.Of(query, func(query string) bool {
		m := cachedTables.FindStringSubmatch(query)
		if m == nil {
			return false
		}
		verb := strings.Join(strings.Fields(strings.ToUpper(m[1])), " ")
		if strings.HasPrefix(verb, "INSERT") && verb != "INSERT OR REPLACE INTO" {
			// An insert adds a row (a consent adds to a cached history);
			// an upsert may change one.
			return m[4] == "consents" || strings.Contains(strings.ToUpper(query), "DO UPDATE")
		}
		return true
	})
}

// sharedGen is three counters in a file mapped into every custos process
// that opens the database: the first advanced by each commit that
// changes cached rows (the read cache), the second by each commit that
// changes anything but the audit log (kept snapshots, kept.go), the third
// by each transaction that appends to the audit log, while it holds the
// write lock (the writer's kept audit head, DB.keptHeadFor). The fourth
// and fifth bracket each commit that changes anything but the audit log,
// the fourth advanced before its COMMIT and the fifth after it and after
// the second (commitData): while they differ such a commit is under way
// somewhere, perhaps visible already and not yet counted in the second
// (durable.go's early answers).
//
// Every process holds a shared flock on the file while it has it open.
// One that opens the file alone (its exclusive flock is granted) evens
// the fifth counter with the fourth: a process killed inside a commit
// left them apart, which would otherwise stop early answers for good.
type sharedGen struct {
	f    *os.File // holds the flock; nil in tests that make a sharedGen of their own
	mem  []byte
	p    *uint64
	d    *uint64
	a    *uint64 // nil in tests that make a sharedGen of their own
	b, e *uint64 // likewise
	// turn, lastRun, marks and owners are the writers' turn counter,
	// last yielded run's length, waiting marks and their owners
	// (turns.go); likewise nil.
	turn, lastRun *uint64
	marks, owners []uint64
	// pending is each process slot's cache change under way (pendCache),
	// slotBegun and slotEnded its commits bracketed by commitData;
	// likewise nil.
	pending, slotBegun, slotEnded []uint64
	// proc is this process's slot (takeProcSlot) plus one; 0: none.
	proc int
	// asked is when this process last asked the kernel whether each
	// slot's process is alive (repairDead), Unix nanoseconds.
	asked [turnSlots]atomic.Int64
}

// pendingOffset, slotBegunOffset and slotEndedOffset place the process
// slots' pending words (pendCache) and their commits begun and ended
// (commitData) after the waiting marks' owners.
const (
	pendingOffset   = ownersOffset + 8*turnSlots
	slotBegunOffset = pendingOffset + 8*turnSlots
	slotEndedOffset = slotBegunOffset + 8*turnSlots
)

// sharedGenSize is the counters' file size: five counters, then the
// writers' turn counter, last run's length, waiting marks and their
// owners (turns.go), then the process slots' words. Files written before
// the second to seventh counters, the owners or the slots' words held
// fewer; opening one makes it this long, and a process of an older build
// maps only the counters it knows.
const sharedGenSize = slotEndedOffset + 8*turnSlots

func openSharedGen(dbPath string) (g *sharedGen, err error) {
	f, err := os.OpenFile(dbPath+"-cachegen", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < sharedGenSize {
		if err := f.Truncate(sharedGenSize); err != nil {
			return nil, err
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, sharedGenSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s-cachegen: %w", dbPath, err)
	}
	if len(mem) < sharedGenSize {
		return nil, errors.New("short mapping")
	}
	g = &sharedGen{f: f, mem: mem, p: (*uint64)(unsafe.Pointer(&mem[0])), d: (*uint64)(unsafe.Pointer(&mem[8])),
		a: (*uint64)(unsafe.Pointer(&mem[16])), b: (*uint64)(unsafe.Pointer(&mem[24])), e: (*uint64)(unsafe.Pointer(&mem[32])),
		turn: (*uint64)(unsafe.Pointer(&mem[turnCounterOffset])), lastRun: (*uint64)(unsafe.Pointer(&mem[lastRunOffset])),
		marks:     unsafe.Slice((*uint64)(unsafe.Pointer(&mem[turnSlotsOffset])), turnSlots),
		owners:    unsafe.Slice((*uint64)(unsafe.Pointer(&mem[ownersOffset])), turnSlots),
		pending:   unsafe.Slice((*uint64)(unsafe.Pointer(&mem[pendingOffset])), turnSlots),
		slotBegun: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[slotBegunOffset])), turnSlots),
		slotEnded: unsafe.Slice((*uint64)(unsafe.Pointer(&mem[slotEndedOffset])), turnSlots)}
	alone := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
	if alone {
		atomic.StoreUint64(g.e, atomic.LoadUint64(g.b))
		g.clearMarks()
	}
	// Converting the exclusive lock, or waiting for another opener's
	// exclusive one, which it holds only as long as the line above.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		syscall.Munmap(mem)
		return nil, fmt.Errorf("lock %s-cachegen: %w", dbPath, err)
	}
	g.proc = g.takeProcSlot() + 1
	g.clearOwnMarks()
	if g.proc > 0 {
		// What the process that held the slot before left.
		g.repairSlot(g.proc - 1)
	}
	return g, nil
}

func (g *sharedGen) load() uint64 { return atomic.LoadUint64(g.p) }
func (g *sharedGen) add() uint64  { return atomic.AddUint64(g.p, 1) }

// loadData and addData read and advance the second counter: commits
// that changed anything but the audit log.
func (g *sharedGen) loadData() uint64 { return atomic.LoadUint64(g.d) }
func (g *sharedGen) addData()         { atomic.AddUint64(g.d, 1) }

// loadAudit and addAudit read and advance the third counter: audit
// appends. ok is false when there is no such counter.
func (g *sharedGen) loadAudit() (n uint64, ok bool) {
	if g == nil || g.a == nil {
		return 0, false
	}
	return atomic.LoadUint64(g.a), true
}

func (g *sharedGen) addAudit() {
	if g != nil && g.a != nil {
		atomic.AddUint64(g.a, 1)
	}
}

// commitData runs commit, a transaction's COMMIT. When the transaction
// changed anything but the audit log (wrote) it brackets it for the other
// processes on the file: the fourth counter before, the data counter and
// then the fifth after, whatever the outcome.
func (g *sharedGen) commitData(wrote bool, commit func() error) error {
	if !wrote {
		return commit()
	}
	if g.b != nil {
		atomic.AddUint64(g.b, 1)
	}
	// The slot's own count inside the global one's, so that a process
	// that dies between the two leaves the slot's counts even: its
	// bracket is then left open, as before slots (repairDead).
	g.slotAdd(g.slotBegun)
	defer func() {
		g.addData()
		g.slotAdd(g.slotEnded)
		if g.e != nil {
			atomic.AddUint64(g.e, 1)
		}
	}()
	return commit()
}

// slotAdd advances this process's slot's word in words (slotBegun or
// slotEnded), when it has a slot.
func (g *sharedGen) slotAdd(words []uint64) {
	if g.proc > 0 && len(words) > 0 {
		atomic.AddUint64(&words[g.proc-1], 1)
	}
}

// settledData returns the data counter, and whether no commit bracketed
// by commitData was under way, anywhere, from before the counter was
// read: dataCommits reads the fifth counter first, so each commit it
// counts as ended is counted as begun too, and the two are equal only if
// every commit begun by then had ended, its data counted, before the
// data counter is read.
func (g *sharedGen) settledData() (data uint64, settled bool) {
	begun, ended := g.dataCommits()
	return g.loadData(), begun == ended
}

// dataCommits returns the fourth and fifth counters (commitData): the
// data commits begun and ended on the file, the fifth read first (0 and
// 0 when the file has no such counters).
func (g *sharedGen) dataCommits() (begun, ended uint64) {
	if g == nil || g.e == nil {
		return 0, 0
	}
	ended = atomic.LoadUint64(g.e)
	return atomic.LoadUint64(g.b), ended
}

func (g *sharedGen) close() error {
	if g == nil || g.mem == nil {
		return nil
	}
	err := syscall.Munmap(g.mem)
	g.mem, g.p, g.d, g.a, g.b, g.e, g.turn, g.lastRun = nil, nil, nil, nil, nil, nil, nil, nil
	g.marks, g.owners, g.pending, g.slotBegun, g.slotEnded = nil, nil, nil, nil, nil
	if g.f != nil {
		// Closing the file releases its flock, and its process slot's
		// lock (takeProcSlot).
		err = errors.Join(err, g.f.Close())
		g.f = nil
	}
	return err
}

// A change of cached rows under way, for the other processes on the file
// should its process die before it tells them.
//
// The shared counter moves after a commit that changed cached rows, when
// the writer answers the commit's callers (DB.invalidate). A process
// killed between its COMMIT and that advance left the other processes'
// read caches holding rows the commit had changed, an erased customer's
// among them, until something else moved the counter: possibly for
// hours. So a process with a slot (takeProcSlot) sets its slot's pending
// word to a token before such a COMMIT, and clears it after the advance.
// A View that finds another slot's word set by a process that has let its
// slot go, dead, advances the counters for it (repairDead), which
// empties every read cache on the file at its next View, its own
// included; so does a process that takes the slot next. A process
// without a slot (more than turnSlots on the file, or no such locks)
// sets no word, and its death there is not caught.

// pendCache sets this process's pending word and returns its token, 0
// when the process has no slot.
func (g *sharedGen) pendCache() uint64 {
	if g == nil || g.proc == 0 || len(g.pending) == 0 {
		return 0
	}
	token := uint64(time.Now().UnixNano()) | 1
	atomic.StoreUint64(&g.pending[g.proc-1], token)
	return token
}

// unpendCache clears the pending word pendCache set, once the counter has
// moved for its change.
func (g *sharedGen) unpendCache(token uint64) {
	if g != nil && g.proc > 0 && len(g.pending) > 0 {
		atomic.CompareAndSwapUint64(&g.pending[g.proc-1], token, 0)
	}
}

// repairDead repairs what each other process slot left whose process has
// let it go (repairSlot), and reports whether it advanced the counters.
// A View calls it first, and the checkpointer every round; it reads the
// slots' words, and asks after a slot only when it left something.
func (g *sharedGen) repairDead() bool {
	if g == nil {
		return false
	}
	repaired := false
	for q := range g.pending {
		if q == g.proc-1 {
			continue
		}
		token := atomic.LoadUint64(&g.pending[q])
		begun, ended := atomic.LoadUint64(&g.slotBegun[q]), atomic.LoadUint64(&g.slotEnded[q])
		if token == 0 && begun == ended || !g.mayAsk(q) || g.procAlive(q) {
			continue
		}
		// Its words were read before the slot was found free: a process
		// that takes the slot since repairs them itself first, and any
		// words it sets after are its own, which the compare-and-swaps
		// below leave alone.
		if g.repairWords(q, token, begun, ended) {
			repaired = true
		}
	}
	return repaired
}

// askEvery is how often, at most, repairDead asks the kernel after one
// slot: while another process commits, its words are set during each of
// its commits, and every View would otherwise make a system call (2.3 µs
// a View against 0.04 alone, BenchmarkRepairDead). A dead process's
// words are then repaired up to askEvery later.
const askEvery = time.Millisecond

// mayAsk says whether repairDead may ask after slot q now, and notes that
// it does; one caller at a time gets yes.
func (g *sharedGen) mayAsk(q int) bool {
	now := time.Now().UnixNano()
	last := g.asked[q].Load()
	return now-last >= int64(askEvery) && g.asked[q].CompareAndSwap(last, now)
}

// repairSlot repairs what the process that held slot q before left, for a
// process that has just taken it.
func (g *sharedGen) repairSlot(q int) {
	if q < len(g.pending) {
		g.repairWords(q, atomic.LoadUint64(&g.pending[q]), atomic.LoadUint64(&g.slotBegun[q]), atomic.LoadUint64(&g.slotEnded[q]))
	}
}

// repairWords does, for the dead process of slot q, what it did not live
// to do; token, begun and ended are the slot's words as read. A cache
// change it set out to commit (token set) advances the data and shared
// counters, which empties every read cache on the file at its next View.
// A commit it had begun and not ended (begun past ended) is counted as
// ended, after the data counter, as commitData would have: so the file's
// commits begun and ended are even again, and early answers (durable.go)
// go on, where before they stopped until a process opened the file alone.
// Whoever clears a word does its part, once.
func (g *sharedGen) repairWords(q int, token, begun, ended uint64) bool {
	repaired := false
	if token != 0 && atomic.CompareAndSwapUint64(&g.pending[q], token, 0) {
		g.addData()
		g.add()
		repaired = true
	}
	if begun != ended && atomic.CompareAndSwapUint64(&g.slotEnded[q], ended, begun) {
		g.addData()
		if g.e != nil {
			atomic.AddUint64(g.e, begun-ended)
		}
		repaired = true
	}
	return repaired
}
