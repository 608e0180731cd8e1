package sqlite

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"custos"
)

// TestReadCacheNoLockOrder hammers the cache's fills, lookups and
// invalidations from many goroutines over few shards; it would hang if
// any path held two shard locks at once in different orders (the
// watchdog then fails it).
func TestReadCacheNoLockOrder(t *testing.T) {
	c := newReadCache(64, &sharedGen{p: new(uint64)})
	watchdog := time.AfterFunc(60*time.Second, func() { panic("TestReadCacheNoLockOrder: no progress in 60 s (deadlock)") })
	defer watchdog.Stop()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stamp := c.begin()
			for i := range 50_000 {
				if i%64 == 0 {
					stamp = c.begin() // a new View
				}
				id := custos.SubjectID(fmt.Sprint((i*31 + g*7) % 97))
				key := []byte(fmt.Sprint((i*17 + g) % 89))
				switch i % 5 {
				case 0:
					c.putSubject(stamp, &custos.StoredSubject{ID: id}, nil, nil)
				case 1, 2:
					c.putLookup(stamp, "mobile", key, id)
				case 3:
					c.getLookup("mobile", key)
				case 4:
					if g == 0 {
						c.invalidate(&invalidation{ids: map[custos.SubjectID]struct{}{id: {}}})
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestNoteScopes: the customers a statement names reach the
// invalidation once per scope (about), and a scope inside another, or
// after it, names its own: a write whose invalidation missed a customer
// would leave a stale cached read. Issue #7 (a batch's many statements
// name its customers once).
func TestNoteScopes(t *testing.T) {
	const q = "UPDATE subjects SET sealed = ? WHERE id = ?"
	if !changesCached(q) {
		t.Fatalf("changesCached(%q) = false, want true", q)
	}
	inv := &invalidation{}
	tx := &Tx{inv: inv}
	outer := tx.about("a1", "a2")
	tx.note(q)
	inner := tx.about("b")
	tx.note(q)
	tx.note(q)
	inner()
	tx.note(q)
	outer()
	next := tx.about("c")
	tx.note(q)
	next()
	// An outer scope whose first statement comes after an inner one's.
	late := tx.about("d")
	early := tx.about("e")
	tx.note(q)
	early()
	tx.note(q)
	late()
	want := map[custos.SubjectID]struct{}{"a1": {}, "a2": {}, "b": {}, "c": {}, "d": {}, "e": {}}
	if inv.all || fmt.Sprint(inv.ids) != fmt.Sprint(want) {
		t.Fatalf("invalidation all=%v ids=%v, want only %v", inv.all, inv.ids, want)
	}
	tx.note(q) // no customer named: everything
	if !inv.all {
		t.Errorf("a statement outside any scope did not empty the whole cache")
	}
}

// TestChangesCached: which statements may change a row the read cache
// holds. A miss here either serves a stale read (a changing statement
// taken for an adding one) or empties the cache on every create (an
// adding one taken for a changing one: every multi-row insert is INSERT
// OR FAIL, and until the twenty-ninth session the mixed workload's reads
// found the cache empty for it).
func TestChangesCached(t *testing.T) {
	for q, want := range map[string]bool{
		"INSERT INTO subjects (id, sealed) VALUES (?, ?)":                                               false,
		"INSERT OR FAIL INTO subjects (id, sealed) VALUES (?, ?), (?, ?)":                               false,
		"INSERT OR FAIL INTO lookups (field, hash, subject_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING": false,
		"insert or ignore into data_keys (subject_id) values (?)":                                       false,
		"INSERT OR ABORT INTO lookups (field) VALUES (?)":                                               false,
		"INSERT  OR\tROLLBACK INTO \"subjects\" (id) VALUES (?)":                                        false,
		"INSERT INTO audit_events (seq) VALUES (?)":                                                     false,
		"INSERT INTO records (id) VALUES (?)":                                                           false,
		"UPDATE records SET sealed = ?":                                                                 false,
		"INSERT OR REPLACE INTO subjects (id) VALUES (?)":                                               true,
		"insert  or  replace into lookups (field) values (?)":                                           true,
		"REPLACE INTO data_keys (subject_id) VALUES (?)":                                                true,
		"INSERT INTO subjects (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed":  true,
		"INSERT OR FAIL INTO data_keys (subject_id) VALUES (?) ON CONFLICT DO UPDATE SET version = 2":   true,
		"INSERT INTO consents (id) VALUES (?)":                                                          true,
		"INSERT OR FAIL INTO consents (id) VALUES (?), (?)":                                             true,
		"UPDATE subjects SET sealed = ?":                                                                true,
		"UPDATE OR IGNORE data_keys SET version = ?":                                                    true,
		"DELETE FROM lookups WHERE subject_id = ?":                                                      true,
	} {
		if got := changesCached(q); got != want {
			t.Errorf("changesCached(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestReadCacheSecondChance: a full cache makes room by dropping an entry
// not read since it was put or last passed over, so a customer read
// between every two fills stays while thousands of others come and go.
// A random eviction would have dropped it (about 40 evictions in its
// shard, each taking it with a chance of one in four). Issue #7.
func TestReadCacheSecondChance(t *testing.T) {
	c := newReadCache(4*cacheShards, &sharedGen{p: new(uint64)})
	stamp := c.begin()
	hot := custos.SubjectID("hot")
	c.putSubject(stamp, &custos.StoredSubject{ID: hot}, nil, nil)
	for i := range 40 * c.max * cacheShards {
		if c.getSubject(hot) == nil {
			t.Fatalf("the customer read between every two fills was evicted after %d fills", i)
		}
		c.putSubject(stamp, &custos.StoredSubject{ID: custos.SubjectID(fmt.Sprint("cold", i))}, nil, nil)
	}
	s := c.shard(hot)
	if n := len(s.entries); n != c.max {
		t.Errorf("the hot customer's shard holds %d entries, want %d (full, no more)", n, c.max)
	}
	// Not read any more, it goes like the others.
	for i := range 40 * c.max * cacheShards {
		c.putSubject(stamp, &custos.StoredSubject{ID: custos.SubjectID(fmt.Sprint("later", i))}, nil, nil)
	}
	s.mu.Lock()
	_, ok := s.entries[hot]
	s.mu.Unlock()
	if ok {
		t.Error("the customer no longer read is still cached after thousands of fills, want it evicted")
	}
}

// TestReadCacheEvictsWhenAllRead: a shard smaller than an eviction's
// probe, whose entries were all read since the last fill, still makes
// room: the cache never holds more than its size.
func TestReadCacheEvictsWhenAllRead(t *testing.T) {
	c := newReadCache(2*cacheShards, &sharedGen{p: new(uint64)})
	stamp := c.begin()
	var ids []custos.SubjectID
	for i := range 50 * cacheShards {
		id := custos.SubjectID(fmt.Sprint("s", i))
		c.putSubject(stamp, &custos.StoredSubject{ID: id}, nil, nil)
		ids = append(ids, id)
		for _, id := range ids {
			c.getSubject(id)
		}
	}
	for i := range c.shards {
		if n := len(c.shards[i].entries); n > c.max {
			t.Errorf("shard %d holds %d entries, want at most %d", i, n, c.max)
		}
	}
}

// A counters' file from a build that knew two counters grows to three and
// keeps what the first two read; the third starts at zero.
func TestSharedGenGrows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	old := make([]byte, 16)
	binary.NativeEndian.PutUint64(old[0:], 5)
	binary.NativeEndian.PutUint64(old[8:], 7)
	if err := os.WriteFile(path+"-cachegen", old, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if fi, err := os.Stat(path + "-cachegen"); err != nil || fi.Size() != sharedGenSize {
		t.Fatalf("counters' file: %v, %v; want %d bytes", fi, err, sharedGenSize)
	}
	if g.load() != 5 || g.loadData() != 7 {
		t.Fatalf("first two counters %d, %d; want 5, 7", g.load(), g.loadData())
	}
	if n, ok := g.loadAudit(); n != 0 || !ok {
		t.Fatalf("audit counter %d, %v; want 0, true", n, ok)
	}
	g.addAudit()
	if n, _ := g.loadAudit(); n != 1 {
		t.Fatalf("audit counter after an advance %d, want 1", n)
	}
	// A sharedGen without the third counter (as tests make) reports so.
	if _, ok := (&sharedGen{p: new(uint64)}).loadAudit(); ok {
		t.Fatal("sharedGen without an audit counter: ok")
	}
}
