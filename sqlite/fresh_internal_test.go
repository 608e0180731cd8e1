package sqlite

import (
	"testing"
	"time"

	"custos"
)

// TestPutFreshAfterForeignAdvance: when another process advanced the
// shared counter between a group's COMMIT and the put, it may have
// changed the customers the group created, so none is put; without such
// an advance they are.
func TestPutFreshAfterForeignAdvance(t *testing.T) {
	db := openWithCache(t, 100)
	put := func(id custos.SubjectID, sharedBefore uint64) {
		db.fresh = &freshRows{}
		e := db.fresh.entry(id, 0, true)
		now := time.Now().UTC().Truncate(time.Microsecond)
		e.st = &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte("x")}, CreatedAt: now, UpdatedAt: now}
		db.putFresh([]error{nil}, sharedBefore, 0)
	}
	now := db.rc.shared.load()
	put("s1", now)
	if st := db.ReadCacheStats(); st.Fresh != 1 || st.Entries != 1 {
		t.Fatalf("no foreign advance: %+v, want s1 put", st)
	}
	db.rc.shared.add() // another process's commit, after this one's
	put("s2", now)
	if st := db.ReadCacheStats(); st.Fresh != 1 || st.Entries != 1 {
		t.Fatalf("after a foreign advance: %+v, want s2 left out", st)
	}
}
