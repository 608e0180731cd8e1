package postgres

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"custos"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestChangesCached: the statements that may change a row a read cache
// holds move the cache generation on (readcache.go); inserts of a new
// customer's rows, reads and audit appends do not.
func TestChangesCached(t *testing.T) {
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`UPDATE subjects SET sealed = $1, updated_at = $2 WHERE id = $3`, true},
		{`DELETE FROM data_keys WHERE subject_id = $1`, true},
		{`DELETE FROM lookups WHERE subject_id = $1 AND field = $2`, true},
		{eraseRowsSQL, true}, // deletes inside WITH
		{sqlutil.InsertConsentSQL, true},
		{sqlutil.DeleteConsentSQL, true},
		{`update  "subjects" set restricted_until = $1 where id = $2`, true},
		{`TRUNCATE lookups`, true},
		{`INSERT INTO lookups (field, hash, subject_id) VALUES ($1, $2, $3) ON CONFLICT (field, hash) DO UPDATE SET subject_id = excluded.subject_id`, true},
		{newSubjectSQL(" ON CONFLICT DO NOTHING"), false},
		{insertNewSubjectStrict, false},
		{`INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, false},
		{lockSubjectSQL, false}, // SELECT … FOR UPDATE
		{serverChainSQL, false},
		{`UPDATE subject_lifecycle SET at = $1 WHERE subject_id = $2`, false},
		{`DELETE FROM records WHERE subject_id = $1`, false},
		{bumpGenSQL, false},
	} {
		if got := changesCached(c.query); got != c.want {
			t.Errorf("changesCached(%.80q) = %v, want %v", c.query, got, c.want)
		}
	}
}

// TestReadCacheEntries: the cache answers only with entries of the
// generations the node knows (the whole database's and the customer's
// slot's), never caches generation 0, hands out and keeps copies, and
// stays within its size.
func TestReadCacheEntries(t *testing.T) {
	c := newReadCache(32) // 2 a shard
	read := func(id string) *sqlutil.SubjectRead {
		return &sqlutil.SubjectRead{
			Subject:  &custos.StoredSubject{ID: custos.SubjectID(id), Sealed: map[string][]byte{"name": {1, 2, 3}}},
			Key:      &custos.DataKey{SubjectID: custos.SubjectID(id), Version: 1, Wrapped: []byte{9}},
			Consents: []*custos.StoredConsent{{Seq: 1, SubjectID: custos.SubjectID(id), Purpose: "marketing", Sealed: []byte{7}}},
		}
	}
	hash := []byte{0xab}
	if c.put(read("sub_a"), gens{0, 0}, "mobile", hash); c.known.Load() != 0 {
		t.Fatalf("generation 0 taken as known")
	}
	if _, _, ok := c.byID("sub_a"); ok {
		t.Fatalf("an entry of generation 0 answered")
	}
	orig := read("sub_a")
	c.put(orig, gens{5, 0}, "mobile", hash)
	orig.Subject.Sealed["name"][0] = 0 // the caller's copy, changed after
	got, g, ok := c.byID("sub_a")
	if !ok || g != (gens{5, 0}) || got.Subject.Sealed["name"][0] != 1 {
		t.Fatalf("byID after put at 5: ok %v, gens %v, name %v; want the entry as put, of generation 5", ok, g, got.Subject.Sealed["name"])
	}
	got.Subject.Sealed["name"][0], got.Key.Wrapped[0], got.Consents[0].Sealed[0] = 0, 0, 0
	if again, _, _ := c.byID("sub_a"); again.Subject.Sealed["name"][0] != 1 || again.Key.Wrapped[0] != 9 || again.Consents[0].Sealed[0] != 7 {
		t.Fatalf("a copy handed out, changed, changed the cache")
	}
	if r, g, ok := c.byKey("mobile", hash); !ok || g != (gens{5, 0}) || r.Subject.ID != "sub_a" {
		t.Fatalf("byKey: ok %v, gens %v", ok, g)
	}
	if c.put(read("sub_b"), gens{4, 0}, "", nil); c.known.Load() != 5 {
		t.Fatalf("an older generation's read moved the known one to %d", c.known.Load())
	}
	if _, _, ok := c.byID("sub_b"); ok {
		t.Fatalf("an entry older than the known generation answered")
	}
	c.learn(&errStaleGen{gen: 6})
	if _, _, ok := c.byID("sub_a"); ok {
		t.Fatalf("an entry of generation 5 answered after 6 was learned")
	}
	if _, _, ok := c.byKey("mobile", hash); ok {
		t.Fatalf("a key of generation 5 answered after 6 was learned")
	}
	// An owner filled at a later generation than its key does not vouch
	// for the key, whatever the node knows when it looks.
	c.put(read("sub_a"), gens{6, 0}, "mobile", hash)
	c.put(read("sub_a"), gens{7, 0}, "", nil)
	c.learn(&errStaleGen{gen: 6})
	if _, _, ok := c.byKey("mobile", hash); ok {
		t.Fatalf("a key of generation 6 answered with its owner of generation 7")
	}

	// Slots: a slot's move retires its customers' entries, not others'.
	a, b := "sub_a", "sub_b"
	for i := 0; cacheSlot(custos.SubjectID(b)) == cacheSlot(custos.SubjectID(a)); i++ {
		b = fmt.Sprintf("sub_b%d", i)
	}
	sa := cacheSlot(custos.SubjectID(a))
	c.put(read(a), gens{7, 0}, "mobile", hash)
	c.put(read(b), gens{7, 3}, "", nil)
	if _, g, ok := c.byID(custos.SubjectID(b)); !ok || g != (gens{7, 3}) {
		t.Fatalf("b's entry at slot gen 3: ok %v, gens %v", ok, g)
	}
	c.learn(&errStaleGen{gen: 7, slots: []slotGen{{sa, 1}}})
	if _, _, ok := c.byID(custos.SubjectID(a)); ok {
		t.Fatalf("a's entry answered after its slot moved")
	}
	if _, _, ok := c.byKey("mobile", hash); ok {
		t.Fatalf("a's key answered after a's slot moved")
	}
	if _, _, ok := c.byID(custos.SubjectID(b)); !ok {
		t.Fatalf("b's entry did not answer after another slot moved")
	}
	if c.put(read(a), gens{7, 0}, "", nil); c.slots[sa].Load() != 1 {
		t.Fatalf("a read of an older slot gen moved the known one to %d", c.slots[sa].Load())
	}
	c.put(read(a), gens{7, 1}, "mobile", hash)
	if _, g, ok := c.byKey("mobile", hash); !ok || g != (gens{7, 1}) {
		t.Fatalf("a's key at its slot's new gen: ok %v, gens %v", ok, g)
	}
	// The node's own change to a's slot retires a's entries until a read
	// says what the slot's gen is now; b's stay.
	c.forget(&cacheInv{slots: map[int]struct{}{sa: {}}})
	if _, _, ok := c.byID(custos.SubjectID(a)); ok {
		t.Fatalf("a's entry answered after the node's own change to its slot")
	}
	if _, _, ok := c.byID(custos.SubjectID(b)); !ok {
		t.Fatalf("b's entry did not answer after the node's own change to another slot")
	}
	c.forget(&cacheInv{all: true})
	if _, _, ok := c.byID(custos.SubjectID(b)); ok {
		t.Fatalf("an entry answered after the node's own change to customers it did not name")
	}
	for i := range 200 {
		c.put(read(fmt.Sprintf("sub_%d", i)), gens{8, 0}, "", nil)
	}
	if n := (&DB{rc: c}).ReadCacheStats().Entries; n > 32 {
		t.Fatalf("%d entries, want at most 32", n)
	}
	if _, g, ok := c.byID("sub_199"); !ok || g.all != 8 {
		t.Fatalf("the last entry put: ok %v, gens %v", ok, g)
	}
}

// TestStaleGenDetail: the check's DETAIL (migration 0014's cache_check)
// is read back into the gens to learn; a DETAIL not of that form is not
// taken for one.
func TestStaleGenDetail(t *testing.T) {
	es, ok := staleGenOf(&pgconn.PgError{Code: staleGen, Detail: "12 7:3 65535:0"})
	if !ok || es.gen != 12 || !slices.Equal(es.slots, []slotGen{{7, 3}, {65535, 0}}) {
		t.Fatalf("staleGenOf: %v, %+v", ok, es)
	}
	for _, d := range []string{"", "x", "12 7", "12 70000:1", "12 -1:2", "12 3:y"} {
		if _, ok := staleGenOf(&pgconn.PgError{Code: staleGen, Detail: d}); ok {
			t.Errorf("DETAIL %q taken for a stale generation", d)
		}
	}
	if _, ok := staleGenOf(&pgconn.PgError{Code: "23505", Detail: "12"}); ok {
		t.Error("another SQLSTATE taken for a stale generation")
	}
}

// TestBumpSQL: a transaction moves the slots of the customers its scoped
// statements changed, in slot order; a change outside a scope moves the
// whole database's generation; inserts move nothing.
func TestBumpSQL(t *testing.T) {
	tx := &Tx{write: true}
	tx.note(sqlutil.InsertConsentSQL) // no scope: not named
	if got := tx.inv.bumpSQL(); got != bumpGenSQL {
		t.Fatalf("a change outside a scope: %q, want %q", got, bumpGenSQL)
	}
	tx = &Tx{write: true}
	tx.note(insertNewSubjectStrict)
	if got := tx.inv.bumpSQL(); got != "" {
		t.Fatalf("an insert of a new customer moved %q", got)
	}
	ids := []custos.SubjectID{"sub_x", "sub_y", "sub_z"}
	done := tx.about(ids...)
	tx.note(sqlutil.DeleteConsentSQL)
	done()
	undo := tx.about("sub_x")
	tx.note(`DELETE FROM lookups WHERE subject_id = $1`)
	undo()
	var slots []int
	for _, id := range ids {
		slots = append(slots, cacheSlot(id))
	}
	slices.Sort(slots)
	slots = slices.Compact(slots)
	var rows []string
	for _, s := range slots {
		rows = append(rows, fmt.Sprintf("(%d, 1)", s))
	}
	if got, want := tx.inv.bumpSQL(), bumpSlotsSQL(slots); got != want || !strings.Contains(got, " VALUES "+strings.Join(rows, ", ")+" ON CONFLICT") {
		t.Fatalf("bump %q, want %q", got, want)
	}
	if tx.scope != nil {
		t.Fatalf("scope %v after the scopes ended", tx.scope)
	}
}
