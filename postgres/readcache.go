package postgres

import (
	"errors"
	"fmt"
	"hash/maphash"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"custos"
	"custos/internal/cacheblob"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5/pgconn"
)

// A read cache for PostgreSQL reads by id and lookups (Glance), checked
// against the generation of the customers' data at the end of the group
// that commits the read's audit event (BENCHMARKS.md, fifty-first
// session).
//
// Several nodes write one database, so a node cannot know by itself when
// what it cached changed. The table cache_gen holds one number, gen
// (migration 0012): every transaction that changes a row a cache may hold
// — a customer's subject row, data key, consents or lookup keys; an
// insert of a new customer's rows changes none — adds one to it before
// it commits (Tx.changed, bumpGenSQL); a change made outside custos
// (another tool, a migration, a node of an older version) moves it through
// the triggers of migration 0013, which leave custos's own transactions,
// marked with markBumpsSQL, alone. A read's statement returns gen as
// its own snapshot saw it, and the cache tags what it keeps with that gen.
// The node answers a read from the cache only with entries of the gen it
// knows last (known), and notes that gen in the read's custos.ReadProof.
// The group that commits the read's audit event checks, after taking the
// append lock and before chaining the event, that gen is still the noted
// one (cache_gen_check). It is, unless a change committed after the read's
// entries were filled: the answer is then what a read from the tables
// would have given, since every change that committed before the check
// moved gen. If gen has moved, the check fails the group's transaction
// (SQLSTATE CU001, the current gen in its DETAIL); the node learns the
// gen, the group runs again, and each member whose read came from an
// older gen fails with custos.ErrStaleRead, committing nothing, so that
// core reads again from the tables (custos.ReadProver).
//
// The cache holds what the database holds (ciphertext) and nothing in
// plaintext, like SQLite's (sqlite/readcache.go). It drops nothing when
// gen moves: entries of an older gen are simply not used, and are
// replaced as reads fill the cache again.
//
// An entry is one pointer-free byte slice (internal/cacheblob), as
// SQLite's has been since the twenty-ninth session: kept as the objects
// a statement's read made, 10,000 cached customers were about three
// quarters of the live heap and most of its pointers, which the collector
// traced in every cycle, about three a second in a read step at c=64, and
// the requests its marking ran beside set the read's p99 (BENCHMARKS.md,
// fifty-ninth session).

// DefaultReadCache is how many customers the read cache holds when
// Options.ReadCache is 0.
const DefaultReadCache = 50_000

// readCacheShards spreads the cache's entries over locks.
const readCacheShards = 16

// bumpGenSQL moves the generation on, in a transaction that changed a row
// a read cache may hold. It goes after the append lock where the
// transaction takes one, so that it waits for no other holder of the row
// while holding the lock.
const bumpGenSQL = `UPDATE cache_gen SET gen = gen + 1`

// markBumpsSQL marks a write transaction as custos's own, which moves
// the generation itself at its end (bumpGenSQL): the triggers of
// migration 0013, which move it for changes made outside custos, then
// leave it alone.
const markBumpsSQL = `SET LOCAL custos.bumps = '1'`

// unmarkBumpsSQL takes the mark back, for a migration (migrate.go).
const unmarkBumpsSQL = `SET LOCAL custos.bumps = '0'`

// staleGen is the SQLSTATE cache_gen_check fails with.
const staleGen = "CU001"

// readCache is one node's read cache (see above).
type readCache struct {
	max   int // entries per shard
	seed  maphash.Seed
	known atomic.Int64 // the gen this node learned last: entries of others are not used

	shards [readCacheShards]readShard
	in     cacheblob.Interner // the entries' field names and consent words

	hits, misses, stale atomic.Int64
	warmed              atomic.Int64 // customers the warm-up put (warm.go)
}

type readShard struct {
	mu    sync.Mutex
	byID  map[custos.SubjectID]cachedRead
	byKey map[keyAsk]cachedKey // a blind-index key → its owner
}

type cachedRead struct {
	gen  int64
	blob []byte // cacheblob.Encode of the subject, its key, its consents
}

// The keys' map holds no pointers, as the customers' entries hold none
// (cacheblob), so that the collector has nothing in it to trace, and it
// has room for keysPerCustomer keys for each customer the cache holds, so
// that a full cache's customers' keys fit (keyfill.go): a key and its
// owner are fixed-size arrays, 88 bytes an entry where strings took about
// 100 and two pointers. A key or an id too long for them is not cached
// (no custos id is: ids are 30 bytes, catalog fields' names short, and
// blind-index hashes 16 bytes).

// keysPerCustomer is how many blind-index keys the cache has room for
// for each customer it holds: the default catalog's lookup fields.
const keysPerCustomer = 4

// keyAsk is a blind-index key (field, hash) as the cache files it: the
// field's name, a zero byte and the hash, the hash's length in the last
// byte.
type keyAsk [48]byte

// askOf returns the keyAsk of (field, hash), and false if they do not fit.
func askOf(field string, hash []byte) (keyAsk, bool) {
	var k keyAsk
	if len(field)+1+len(hash) > len(k)-1 {
		return k, false
	}
	n := copy(k[:], field)
	copy(k[n+1:], hash)
	k[len(k)-1] = byte(len(hash))
	return k, true
}

type cachedKey struct {
	gen   int64
	owner [31]byte
	n     uint8 // the owner's id is owner[:n]
}

// ownerOf returns the cachedKey naming id at gen, and false if id does
// not fit.
func ownerOf(id custos.SubjectID, gen int64) (cachedKey, bool) {
	e := cachedKey{gen: gen, n: uint8(len(id))}
	if len(id) > len(e.owner) {
		return e, false
	}
	copy(e.owner[:], id)
	return e, true
}

func (e *cachedKey) id() custos.SubjectID { return custos.SubjectID(e.owner[:e.n]) }

// newReadCache returns a cache of about size customers, or nil when size
// is negative (off).
func newReadCache(size int) *readCache {
	if size < 0 {
		return nil
	}
	if size == 0 {
		size = DefaultReadCache
	}
	c := &readCache{max: max(1, size/readCacheShards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].byID = map[custos.SubjectID]cachedRead{}
		c.shards[i].byKey = map[keyAsk]cachedKey{}
	}
	return c
}

func (c *readCache) shard(key string) *readShard {
	return &c.shards[maphash.String(c.seed, key)%readCacheShards]
}

func (c *readCache) keyShard(k *keyAsk) *readShard {
	return &c.shards[maphash.Bytes(c.seed, k[:])%readCacheShards]
}

// learn records gen as the one the database holds now, found by a check.
func (c *readCache) learn(gen int64) { c.known.Store(gen) }

// forget is called after this node committed a change to cached rows,
// which moved gen on: no entry is used until a read's statement or a
// check says what gen is now (gens start at 1), so that the node's own
// change costs no cached answer that its check would refuse.
func (c *readCache) forget() {
	if c != nil {
		c.known.Store(0)
	}
}

// saw records gen, read by a statement: the node knows it if it is newer
// than what the node knew.
func (c *readCache) saw(gen int64) {
	for k := c.known.Load(); gen > k && !c.known.CompareAndSwap(k, gen); k = c.known.Load() {
	}
}

// byID returns a copy of id's entry and its gen, if it has one of the
// known gen.
func (c *readCache) byID(id custos.SubjectID) (*sqlutil.SubjectRead, int64, bool) {
	return c.at(id, c.known.Load())
}

// at returns a copy of id's entry if it is of gen.
func (c *readCache) at(id custos.SubjectID, gen int64) (*sqlutil.SubjectRead, int64, bool) {
	s := c.shard(string(id))
	s.mu.Lock()
	e, ok := s.byID[id]
	s.mu.Unlock()
	if !ok || e.gen != gen {
		c.misses.Add(1)
		return nil, 0, false
	}
	c.hits.Add(1)
	// The consents are decoded when the transaction asks for them, and
	// only those of the purposes it asks for: an entry's blob is never
	// changed once made (put makes a new one).
	blob := e.blob
	r := &sqlutil.SubjectRead{Subject: cacheblob.Subject(blob, id, &c.in), Key: cacheblob.Key(blob, id),
		ConsentsOf: func(purposes []string) []*custos.StoredConsent {
			return cacheblob.Consents(blob, id, purposes, &c.in)
		}}
	return r, gen, true
}

// byKey is byID for the owner of a blind-index key. The key's entry and
// its owner's must be of one gen, the one the proof then carries: an owner
// filled at a later gen than the key does not vouch for the key.
func (c *readCache) byKey(field string, hash []byte) (*sqlutil.SubjectRead, int64, bool) {
	gen := c.known.Load()
	key, fits := askOf(field, hash)
	var e cachedKey
	ok := false
	if fits {
		s := c.keyShard(&key)
		s.mu.Lock()
		e, ok = s.byKey[key]
		s.mu.Unlock()
	}
	if !ok || e.gen != gen {
		c.misses.Add(1)
		return nil, 0, false
	}
	return c.at(e.id(), gen)
}

// put keeps a copy of r, read by a statement that saw gen, and, for a
// lookup, the key that led to it (field "": a read by id); it reports
// whether it kept r.
func (c *readCache) put(r *sqlutil.SubjectRead, gen int64, field string, hash []byte) bool {
	if c.keep(r, gen, true) != sqlutil.RoomFree {
		return false
	}
	if field != "" {
		c.keepKey(field, hash, r.Subject.ID, gen, true)
	}
	return true
}

// keep puts a copy of r, read by a statement that saw gen, in the cache,
// if gen is the one the node knows (or, newer, becomes it): an older gen's
// entry would never be used, and gen 0 has nothing to check an entry
// against. With evictOld (a read's fill, put) it makes room in a full
// shard; without (the warm-up, warm.go) it puts r only where the shard has
// room or holds an older gen's entry for r's customer. It reports
// sqlutil.RoomFree when it put r, sqlutil.RoomCached when, without
// evictOld, the shard held an entry of gen or newer, and sqlutil.RoomFull
// when it put nothing else.
func (c *readCache) keep(r *sqlutil.SubjectRead, gen int64, evictOld bool) sqlutil.Room {
	if gen <= 0 {
		return sqlutil.RoomFull
	}
	c.saw(gen)
	if gen != c.known.Load() {
		return sqlutil.RoomFull // older than what a check or another read saw
	}
	id := r.Subject.ID
	// What the cache keeps, and what it hands out, is nobody else's to
	// change: an encoding, in memory of its own, which every hit decodes
	// into memory of the caller's.
	blob := cacheblob.Encode(r.Subject, r.Key, r.Consents)
	s := c.shard(string(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if evictOld {
		evict(s.byID, c.max, id)
	} else if e, ok := s.byID[id]; ok && e.gen >= gen {
		return sqlutil.RoomCached
	} else if !ok && len(s.byID) >= c.max {
		return sqlutil.RoomFull
	}
	s.byID[id] = cachedRead{gen: gen, blob: blob}
	return sqlutil.RoomFree
}

// keepKey is keep for the blind-index key (field, hash) of owner; it
// reports whether it put the key.
func (c *readCache) keepKey(field string, hash []byte, owner custos.SubjectID, gen int64, evictOld bool) bool {
	if gen <= 0 || gen != c.known.Load() {
		return false
	}
	key, fits := askOf(field, hash)
	entry, named := ownerOf(owner, gen)
	if !fits || !named {
		return false
	}
	limit := keysPerCustomer * c.max
	s := c.keyShard(&key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if evictOld {
		evict(s.byKey, limit, key)
	} else if e, ok := s.byKey[key]; ok && e.gen >= gen {
		return false
	} else if !ok && len(s.byKey) >= limit {
		return false
	}
	s.byKey[key] = entry
	return true
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

// errStaleGen fails a group whose check found gen moved: the group runs
// again (commitGroup), where the members whose reads came from an older
// gen fail with custos.ErrStaleRead.
type errStaleGen struct{ gen int64 }

func (e *errStaleGen) Error() string {
	return fmt.Sprintf("postgres: the read cache generation moved to %d", e.gen)
}

// staleGenOf returns the errStaleGen err reports, if PostgreSQL failed
// cache_gen_check in it.
func staleGenOf(err error) (*errStaleGen, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != staleGen {
		return nil, false
	}
	gen, perr := strconv.ParseInt(pe.Detail, 10, 64)
	if perr != nil {
		return nil, false
	}
	return &errStaleGen{gen}, true
}

// checkGenSQL checks the gens the group's reads rest on (cache_gen_check),
// without parameters, for a simple query or a batch's control statements.
func checkGenSQL(gens []int64) string {
	s := make([]string, len(gens))
	for i, g := range gens {
		s[i] = strconv.FormatInt(g, 10)
	}
	return `SELECT cache_gen_check('{` + strings.Join(s, ",") + `}'::bigint[])`
}

// endSQL is what a group's end runs after the append lock for the read
// cache: the check of the gens its members' reads rest on, then the bump
// of gen if a member changed a cached row. Checked first, a group's own
// change does not fail its reads: what they read is older than the
// change, which the chain orders after them.
func (tx *Tx) endSQL() []string {
	var out []string
	if len(tx.gens) > 0 {
		out = append(out, checkGenSQL(tx.gens))
	}
	if tx.changed {
		out = append(out, bumpGenSQL)
	}
	return out
}

// noteGen records, in a commit group, that a member's read rests on gen.
func (tx *Tx) noteGen(gen int64) {
	if !slices.Contains(tx.gens, gen) {
		tx.gens = append(tx.gens, gen)
	}
}

// note records in a write transaction that query may change a row a read
// cache holds (tx.changed).
func (tx *Tx) note(query string) {
	if tx.write && !tx.changed && changesCached(query) {
		tx.changed = true
	}
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
