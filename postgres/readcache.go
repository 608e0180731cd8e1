package postgres

import (
	"crypto/md5"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"custos"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5/pgconn"
)

// A read cache for PostgreSQL reads by id and lookups (Glance), checked
// against the generation of the customers' data at the end of the group
// that commits the read's audit event (BENCHMARKS.md, fifty-first
// session).
//
// Several nodes write one database, so a node cannot know by itself when
// what it cached changed. Two kinds of generation say so (migrations 0012
// and 0014): cache_gen holds one for the whole database, and cache_slots
// one for each of 65,536 slots of customers (a customer's slot: the first
// 16 bits of the MD5 of their id, cacheSlot). Every transaction that
// changes a row a cache may hold — a customer's subject row, data key,
// consents or lookup keys; an insert of a new customer's rows changes none
// — moves one of them on before it commits (Tx.inv, bumpSQL): the slots
// of the customers its write methods name (Tx.about), or, for a change
// whose customers are not named, cache_gen. A change made outside custos
// (another tool, a migration, a node of an older version) moves cache_gen
// through the triggers of migration 0013, which leave custos's own
// transactions, marked with markBumpsSQL, alone. A read's statement
// returns both gens of its customer, cache_gen's and its slot's, as its
// own snapshot saw them, and the cache tags what it keeps with them. The
// node answers a read from the cache only with entries of the gens it
// knows last (known and slots), and notes them in the read's
// custos.ReadProof. The group that commits the read's audit event checks,
// after taking the append lock and before chaining the event, that they
// are still the noted ones (cache_check). They are, unless a change to
// that customer (or to another of its slot, or one that moved cache_gen)
// committed after the read's entries were filled: the answer is then what
// a read from the tables would have given, since every such change that
// committed before the check moved one of them. If one has moved, the
// check fails the group's transaction (SQLSTATE CU001, the current gens
// in its DETAIL); the node learns them, the group runs again, and each
// member whose read came from an older gen fails with
// custos.ErrStaleRead, committing nothing, so that core reads again from
// the tables (custos.ReadProver).
//
// With cache_gen alone (the fifty-first session), any correction of any
// customer retired every node's entries, and beside a steady stream of
// changes the cache answered almost nothing; a slot's change retires only
// the entries of that slot's customers (about one of 50,000 cached).
//
// The cache holds what the database holds (ciphertext) and nothing in
// plaintext, like SQLite's (sqlite/readcache.go). It drops nothing when
// gen moves: entries of an older gen are simply not used, and are
// replaced as reads fill the cache again.

// DefaultReadCache is how many customers the read cache holds when
// Options.ReadCache is 0.
const DefaultReadCache = 50_000

// readCacheShards spreads the cache's entries over locks.
const readCacheShards = 16

// cacheSlots is how many slots customers are spread over (migration 0014).
const cacheSlots = 1 << 16

// cacheSlot is id's slot: the first 16 bits of the MD5 of id, as the
// database's cache_slot computes it (migration 0014). MD5 spreads ids over
// slots here; it protects nothing.
func cacheSlot(id custos.SubjectID) int {
	h := md5.Sum([]byte(id))
	return int(h[0])<<8 | int(h[1])
}

// gens is what a read rests on: cache_gen's gen and its customer's slot's,
// as a statement's snapshot saw them.
type gens struct{ all, slot int64 }

// bumpGenSQL moves the whole database's generation on, in a transaction
// that changed a row a read cache may hold without naming its customers
// (Tx.about). It goes after the append lock where the transaction takes
// one, so that it waits for no other holder of the row while holding the
// lock.
const bumpGenSQL = `UPDATE cache_gen SET gen = gen + 1`

// bumpSlotsSQL moves the gens of slots on (a slot's row is written the
// first time it moves), in a transaction that changed the rows of their
// customers. Its rows are written in the order given, slot order, so that
// two transactions that move several slots each, where no append lock
// orders them, take their rows' locks in one order and never wait for
// each other in a cycle. A VALUES list costs the server what bumpGenSQL
// does; the same from unnest took a third more (pgbench, fifty-second
// session).
func bumpSlotsSQL(slots []int) string {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO cache_slots (slot, gen) VALUES `)
	for i, s := range slots {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "(%d, 1)", s)
	}
	sb.WriteString(` ON CONFLICT (slot) DO UPDATE SET gen = cache_slots.gen + 1`)
	return sb.String()
}

// joinInts joins integers with commas, for an array literal.
func joinInts[T int | int64](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatInt(int64(x), 10)
	}
	return strings.Join(s, ",")
}

// markBumpsSQL marks a write transaction as custos's own, which moves
// the generation itself at its end (bumpGenSQL): the triggers of
// migration 0013, which move it for changes made outside custos, then
// leave it alone.
const markBumpsSQL = `SET LOCAL custos.bumps = '1'`

// unmarkBumpsSQL takes the mark back, for a migration (migrate.go).
const unmarkBumpsSQL = `SET LOCAL custos.bumps = '0'`

// staleGen is the SQLSTATE cache_check fails with.
const staleGen = "CU001"

// readCache is one node's read cache (see above).
type readCache struct {
	max   int // entries per shard
	seed  maphash.Seed
	known atomic.Int64 // cache_gen's gen this node learned last: entries of others are not used
	// slots holds each slot's gen this node learned last, -1 when it
	// changed that slot's customers since: entries of others are not used.
	slots []atomic.Int64

	shards [readCacheShards]readShard

	hits, misses, stale atomic.Int64
}

type readShard struct {
	mu    sync.Mutex
	byID  map[custos.SubjectID]cachedRead
	byKey map[string]cachedKey // askKey(field, hash) → owner
}

type cachedRead struct {
	at   gens
	read *sqlutil.SubjectRead
}

type cachedKey struct {
	at gens // its owner's
	id custos.SubjectID
}

// newReadCache returns a cache of about size customers, or nil when size
// is negative (off).
func newReadCache(size int) *readCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultReadCache
	}
	c := &readCache{max: max(1, size/readCacheShards), seed: maphash.MakeSeed(), slots: make([]atomic.Int64, cacheSlots)}
	for i := range c.shards {
		c.shards[i].byID = map[custos.SubjectID]cachedRead{}
		c.shards[i].byKey = map[string]cachedKey{}
	}
	return c
}

func (c *readCache) shard(key string) *readShard {
	return &c.shards[maphash.String(c.seed, key)%readCacheShards]
}

// learn records the gens a check found the database holding: cache_gen's,
// and those of the slots that moved.
func (c *readCache) learn(es *errStaleGen) {
	c.known.Store(es.gen)
	for _, sg := range es.slots {
		c.slots[sg.slot].Store(sg.gen)
	}
}

// forget is called after this node committed a change to cached rows,
// which moved inv's gens on: no entry of them is used until a read's
// statement or a check says what they are now (cache_gen's start at 1,
// slots' at 0), so that the node's own change costs no cached answer that
// its check would refuse.
func (c *readCache) forget(inv *cacheInv) {
	if c == nil {
		return
	}
	if inv.all {
		c.known.Store(0)
	}
	for s := range inv.slots {
		c.slots[s].Store(-1)
	}
}

// saw records g, read by a statement for a customer of slot: the node
// knows each gen if it is newer than what the node knew.
func (c *readCache) saw(slot int, g gens) {
	raise(&c.known, g.all)
	raise(&c.slots[slot], g.slot)
}

// raise sets v to x if x is greater.
func raise(v *atomic.Int64, x int64) {
	for k := v.Load(); x > k && !v.CompareAndSwap(k, x); k = v.Load() {
	}
}

// knownFor returns the gens this node knows for id's entries.
func (c *readCache) knownFor(slot int) gens {
	return gens{c.known.Load(), c.slots[slot].Load()}
}

// byID returns a copy of id's entry and its gens, if it has one of the
// known gens.
func (c *readCache) byID(id custos.SubjectID) (*sqlutil.SubjectRead, gens, bool) {
	return c.at(id, c.knownFor(cacheSlot(id)))
}

// at returns a copy of id's entry if it is of g.
func (c *readCache) at(id custos.SubjectID, g gens) (*sqlutil.SubjectRead, gens, bool) {
	s := c.shard(string(id))
	s.mu.Lock()
	e, ok := s.byID[id]
	s.mu.Unlock()
	if !ok || e.at != g {
		c.misses.Add(1)
		return nil, gens{}, false
	}
	c.hits.Add(1)
	return e.read.Clone(), g, true
}

// byKey is byID for the owner of a blind-index key. The key's entry and
// its owner's must be of the same gens, the ones the proof then carries:
// an owner filled at later gens than the key does not vouch for the key.
func (c *readCache) byKey(field string, hash []byte) (*sqlutil.SubjectRead, gens, bool) {
	key := askKey([]any{field, hash})
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.byKey[key]
	s.mu.Unlock()
	if !ok || e.at != c.knownFor(cacheSlot(e.id)) {
		c.misses.Add(1)
		return nil, gens{}, false
	}
	return c.at(e.id, e.at)
}

// put keeps a copy of r, read by a statement that saw g, and, for a
// lookup, the key that led to it (field "": a read by id).
func (c *readCache) put(r *sqlutil.SubjectRead, g gens, field string, hash []byte) {
	if g.all <= 0 {
		return // no generation to check the entry against
	}
	id := r.Subject.ID
	slot := cacheSlot(id)
	c.saw(slot, g)
	if g != c.knownFor(slot) {
		return // older than what a check or another read saw
	}
	// What the cache keeps, and what it hands out, is nobody else's to
	// change.
	cp := r.Clone()
	s := c.shard(string(id))
	s.mu.Lock()
	evict(s.byID, c.max, id)
	s.byID[id] = cachedRead{at: g, read: cp}
	s.mu.Unlock()
	if field == "" {
		return
	}
	key := askKey([]any{field, hash})
	s = c.shard(key)
	s.mu.Lock()
	evict(s.byKey, c.max, key)
	s.byKey[key] = cachedKey{at: g, id: id}
	s.mu.Unlock()
}

// evict makes room in m for k: when m is full and does not hold k, it
// drops an entry, whichever map iteration gives first.
func evict[K comparable, V any](m map[K]V, limit int, k K) {
	if len(m) < limit {
		return
	}
	if _, ok := m[k]; ok {
		return
	}
	for old := range m {
		delete(m, old)
		return
	}
}

// ReadCacheStats counts the read cache's answers (Hits), the reads it
// could not answer (Misses), and the reads answered from it that the
// check at their audit group's end found stale and that ran again
// (Stale).
type ReadCacheStats struct {
	Hits, Misses, Stale int64
	Entries             int
}

// ReadCacheStats reports the read cache's counters; all zero when it is
// off.
func (db *DB) ReadCacheStats() ReadCacheStats {
	c := db.rc
	if c == nil {
		return ReadCacheStats{}
	}
	st := ReadCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Entries += len(s.byID)
		s.mu.Unlock()
	}
	return st
}

// ProvesReads marks DB as a custos.ReadProver.
func (db *DB) ProvesReads() {}

var _ custos.ReadProver = (*DB)(nil)

// errStaleGen fails a group whose check found a gen moved: the group runs
// again (commitGroup), where the members whose reads came from older gens
// fail with custos.ErrStaleRead.
type errStaleGen struct {
	gen   int64     // cache_gen's
	slots []slotGen // the slots that moved, each with its gen now
}

// slotGen is a slot's gen.
type slotGen struct {
	slot int
	gen  int64
}

func (e *errStaleGen) Error() string {
	return fmt.Sprintf("postgres: the read cache generation moved (now %d, and %d slots moved)", e.gen, len(e.slots))
}

// staleGenOf returns the errStaleGen err reports, if PostgreSQL failed
// cache_check in it: its DETAIL is cache_gen's gen, then "slot:gen" for
// each slot that moved, separated by spaces.
func staleGenOf(err error) (*errStaleGen, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != staleGen {
		return nil, false
	}
	parts := strings.Fields(pe.Detail)
	if len(parts) == 0 {
		return nil, false
	}
	gen, perr := strconv.ParseInt(parts[0], 10, 64)
	if perr != nil {
		return nil, false
	}
	es := &errStaleGen{gen: gen}
	for _, p := range parts[1:] {
		slot, g, ok := strings.Cut(p, ":")
		s, serr := strconv.Atoi(slot)
		sg, gerr := strconv.ParseInt(g, 10, 64)
		if !ok || serr != nil || gerr != nil || s < 0 || s >= cacheSlots {
			return nil, false
		}
		es.slots = append(es.slots, slotGen{s, sg})
	}
	return es, true
}

// checkSQL checks the gens the group's reads rest on (cache_check),
// without parameters, for a simple query or a batch's control statements.
func (tx *Tx) checkSQL() string {
	slots, sgens := make([]int, len(tx.slotGens)), make([]int64, len(tx.slotGens))
	for i, sg := range tx.slotGens {
		slots[i], sgens[i] = sg.slot, sg.gen
	}
	return `SELECT cache_check('{` + joinInts(tx.gens) + `}'::bigint[], '{` + joinInts(slots) + `}'::integer[], '{` + joinInts(sgens) + `}'::bigint[])`
}

// endSQL is what a group's end runs after the append lock for the read
// cache: the check of the gens its members' reads rest on, then the move
// of the gens its members changed. Checked first, a group's own change
// does not fail its reads: what they read is older than the change, which
// the chain orders after them.
func (tx *Tx) endSQL() []string {
	var out []string
	if len(tx.gens) > 0 {
		out = append(out, tx.checkSQL())
	}
	if b := tx.inv.bumpSQL(); b != "" {
		out = append(out, b)
	}
	return out
}

// noteGens records, in a commit group, that a member's read rests on p's
// gens.
func (tx *Tx) noteGens(p *custos.ReadProof) {
	if !slices.Contains(tx.gens, p.Gen) {
		tx.gens = append(tx.gens, p.Gen)
	}
	if sg := (slotGen{p.Slot, p.SlotGen}); !slices.Contains(tx.slotGens, sg) {
		tx.slotGens = append(tx.slotGens, sg)
	}
}

// cacheInv is what a write transaction's statements may have changed of
// the rows a read cache holds: the rows of the customers in slots, or,
// all, rows of customers not named.
type cacheInv struct {
	all   bool
	slots map[int]struct{}
}

func (inv *cacheInv) changed() bool { return inv.all || len(inv.slots) > 0 }

// bumpSQL is the statement that moves inv's gens on before the commit, or
// "" when it changed nothing cached.
func (inv *cacheInv) bumpSQL() string {
	switch {
	case inv.all:
		return bumpGenSQL
	case len(inv.slots) > 0:
		return bumpSlotsSQL(slices.Sorted(maps.Keys(inv.slots)))
	}
	return ""
}

// about declares that the statements run until the returned function is
// called change only rows of the customers ids, so that the transaction
// moves just their slots' gens; without it, a statement changing a cached
// table moves cache_gen, which retires every node's entries.
func (tx *Tx) about(ids ...custos.SubjectID) func() {
	prev, prevNoted := tx.scope, tx.noted
	tx.scope, tx.noted = ids, false
	return func() { tx.scope, tx.noted = prev, prevNoted }
}

// note records in a write transaction what query may change of the rows a
// read cache holds (tx.inv).
func (tx *Tx) note(query string) {
	if !tx.write || tx.noted || tx.inv.all || !changesCached(query) {
		return
	}
	if len(tx.scope) == 0 {
		tx.inv.all = true
		return
	}
	if tx.inv.slots == nil {
		tx.inv.slots = map[int]struct{}{}
	}
	for _, id := range tx.scope {
		tx.inv.slots[cacheSlot(id)] = struct{}{}
	}
	tx.noted = true
}

// cachedTables finds the statements' changes to the tables a read cache
// holds rows of, anywhere in the text, so that those in a WITH count too.
var cachedTables = regexp.MustCompile(`(?is)\b(UPDATE|DELETE\s+FROM|INSERT\s+INTO|MERGE\s+INTO|TRUNCATE(?:\s+TABLE)?)\s+(?:ONLY\s+)?"?(subjects|data_keys|consents|lookups)"?(?:[\s(,;]|$)`)

// doUpdate finds an upsert's update.
var doUpdate = regexp.MustCompile(`(?is)\bDO\s+UPDATE\b`)

var cachedKinds sqlutil.QueryKinds

// changesCached reports whether query may change a row a read cache
// holds. An insert of subject, data key or lookup rows does not, unless
// it is an upsert's update: only rows that exist are cached. An insert of
// a consent does (it adds to a cached history).
func changesCached(query string) bool {
	return cachedKinds.Of(query, func(query string) bool {
		for _, m := range cachedTables.FindAllStringSubmatch(query, -1) {
			verb := strings.ToUpper(m[1])
			if !strings.HasPrefix(verb, "INSERT") || strings.EqualFold(m[2], "consents") || doUpdate.MatchString(query) {
				return true
			}
		}
		return false
	})
}

// glanceProof returns the proof a Glance notes its cache's answer in,
// nil when it may not answer from the cache.
func (tx *Tx) glanceProof() *custos.ReadProof {
	if tx.rc == nil || tx.proof == nil || tx.proof.Bypass {
		return nil
	}
	return tx.proof
}
