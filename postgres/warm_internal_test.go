package postgres

import (
	"fmt"
	"testing"

	"custos"
	"custos/internal/sqlutil"
)

// TestWarmEvictsNothing: the warm-up puts an entry only where its shard
// has room or holds an older generation's entry for the customer; it
// never drops a live read's entry, never replaces one of the known
// generation, and puts nothing of an older generation than the node knows
// (postgres/warm.go).
func TestWarmEvictsNothing(t *testing.T) {
	c := newReadCache(readCacheShards) // one entry a shard
	read := func(id custos.SubjectID) *sqlutil.SubjectRead {
		return &sqlutil.SubjectRead{Subject: &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": {1}}},
			Key: &custos.DataKey{SubjectID: id, Version: 1, Wrapped: []byte{9}}}
	}
	// Two ids of one shard: the second finds it full.
	first := custos.SubjectID("sub_0")
	var second custos.SubjectID
	for i := 1; second == ""; i++ {
		if id := custos.SubjectID(fmt.Sprintf("sub_%d", i)); c.shard(string(id)) == c.shard(string(first)) {
			second = id
		}
	}
	c.put(read(first), 5, "", nil) // a live read's entry, gen 5
	if got := c.room(first); got != sqlutil.RoomCached {
		t.Fatalf("room for a cached customer: %v, want sqlutil.RoomCached", got)
	}
	if got := c.room(second); got != sqlutil.RoomFull {
		t.Fatalf("room in a full shard: %v, want sqlutil.RoomFull", got)
	}
	if got := c.warm(read(second), 5); got != sqlutil.RoomFull {
		t.Fatalf("warm into a full shard: %v, want sqlutil.RoomFull", got)
	}
	if _, _, ok := c.byID(first); !ok {
		t.Fatal("the warm-up evicted a live read's entry")
	}
	if got := c.warm(read(first), 5); got != sqlutil.RoomCached {
		t.Fatalf("warm of a customer cached at the known gen: %v, want sqlutil.RoomCached", got)
	}
	if got := c.warm(read(first), 4); got != sqlutil.RoomFull {
		t.Fatalf("warm at an older gen than known: %v, want sqlutil.RoomFull (never used)", got)
	}
	if got := c.warm(read(first), 0); got != sqlutil.RoomFull {
		t.Fatalf("warm at gen 0: %v, want sqlutil.RoomFull", got)
	}
	// A newer gen: the customer's older entry is replaced, and the node
	// now knows the newer gen.
	if got := c.room(first); got != sqlutil.RoomCached {
		t.Fatalf("room: %v", got)
	}
	if got := c.warm(read(first), 6); got != sqlutil.RoomFree {
		t.Fatalf("warm at a newer gen: %v, want sqlutil.RoomFree (the older entry replaced)", got)
	}
	if _, gen, ok := c.byID(first); !ok || gen != 6 {
		t.Fatalf("after warming at gen 6: entry %v at gen %d, want one at 6", ok, gen)
	}
	if st := c.hits.Load() + c.misses.Load(); st != 2 {
		t.Fatalf("hits and misses: %d, want only the test's two byID calls counted", st)
	}

	// Keys: keysPerCustomer a shard.
	hash := []byte{0xab}
	if !c.warmKey("mobile", hash, first, 6) {
		t.Fatal("warmKey into an empty shard refused")
	}
	if c.warmKey("mobile", hash, first, 6) {
		t.Fatal("warmKey of a key cached at the known gen put it again")
	}
	if c.warmKey("email", hash, first, 5) {
		t.Fatal("warmKey at an older gen than known put it")
	}
	if r, _, ok := c.byKey("mobile", hash); !ok || r.Subject.ID != first {
		t.Fatalf("byKey after warmKey: %v", ok)
	}
	key, _ := askOf("mobile", hash)
	for i, put := 0, 1; put <= keysPerCustomer; i++ {
		h := []byte{byte(i), byte(i >> 8)}
		if k, _ := askOf("mobile", h); k == key || c.keyShard(&k) != c.keyShard(&key) {
			continue
		}
		ok := c.warmKey("mobile", h, second, 6)
		if put < keysPerCustomer && !ok {
			t.Fatalf("warmKey into a shard with room refused (%d keys in it of %d)", put, keysPerCustomer)
		} else if put == keysPerCustomer && ok {
			t.Fatal("warmKey into a full shard put it")
		}
		put++
	}
	if _, _, ok := c.byKey("mobile", hash); !ok {
		t.Fatal("warmKey evicted a key")
	}
}
