package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// lookupsSchema is the lookups table's CREATE statement as SQLite keeps it.
func lookupsSchema(t *testing.T, db *DB) string {
	t.Helper()
	var sql string
	if err := db.read.QueryRow(`SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'lookups'`).Scan(&sql); err != nil {
		t.Fatal(err)
	}
	return sql
}

// allLookups reads every lookup key as "field/hash/subject".
func allLookups(t *testing.T, db *DB) map[string]bool {
	t.Helper()
	rows, err := db.read.Query(`SELECT field, hex(hash), subject_id FROM lookups`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var f, h, s string
		if err := rows.Scan(&f, &h, &s); err != nil {
			t.Fatal(err)
		}
		got[f+"/"+h+"/"+s] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// randomHash is a 32-byte blind-index hash drawn from r.
func randomHash(r *rand.Rand) []byte {
	h := make([]byte, 32)
	for j := range h {
		h[j] = byte(r.Uint32())
	}
	return h
}

// insertLookupSubjects stores n subjects, each with three lookup keys of
// random hashes, in one transaction.
func insertLookupSubjects(t *testing.T, db *DB, r *rand.Rand, from, n int) {
	t.Helper()
	ctx := context.Background()
	now := time.Unix(1e9, 0).UTC()
	err := db.Update(ctx, func(tx custos.Tx) error {
		var lks []custos.Lookup
		for i := from; i < from+n; i++ {
			id := custos.SubjectID(fmt.Sprintf("sub_%06d", i))
			if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": {1}}, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			for _, f := range []string{"email", "id_number", "mobile"} {
				lks = append(lks, custos.Lookup{Field: f, Hash: randomHash(r), SubjectID: id})
			}
		}
		return tx.InsertLookups(ctx, lks)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rewindLookups puts back the lookups table as it was before migration
// (its name in the migrations table, which is deleted): the same keys,
// the foreign key written as references, and the index of keys by
// customer. The next migrating Open applies migration again.
func rewindLookups(t *testing.T, db *DB, references, migration string) {
	t.Helper()
	if _, err := db.write.ExecContext(context.Background(), `CREATE TABLE lookups_old (
			field      TEXT NOT NULL,
			hash       BLOB NOT NULL,
			subject_id TEXT NOT NULL `+references+`,
			PRIMARY KEY (field, hash)
		) STRICT, WITHOUT ROWID;
		INSERT INTO lookups_old SELECT field, hash, subject_id FROM lookups;
		DROP TABLE lookups;
		ALTER TABLE lookups_old RENAME TO lookups;
		CREATE INDEX lookups_subject_id ON lookups (subject_id);
		DELETE FROM migrations WHERE name = ?`, migration); err != nil {
		t.Fatal(err)
	}
}

// orphanLookup stores a lookup key whose subject does not exist.
func orphanLookup(ctx context.Context) func(tx custos.Tx) error {
	return func(tx custos.Tx) error {
		return tx.InsertLookups(ctx, []custos.Lookup{{Field: "mobile", Hash: []byte("orphan"), SubjectID: "sub_missing"}})
	}
}

// checkIntegrity runs SQLite's integrity and foreign-key checks.
func checkIntegrity(t *testing.T, db *DB) {
	t.Helper()
	var integrity string
	if err := db.read.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check: %q, %v", integrity, err)
	}
	var fkErrors int
	if err := db.read.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fkErrors); err != nil || fkErrors != 0 {
		t.Errorf("foreign_key_check: %d rows, %v", fkErrors, err)
	}
}

// TestLookupsKeyDeferred: migration 0010 makes the blind index's foreign
// key checked at commit, in place, keeping every key and the index; the
// key is still enforced: a transaction that leaves a lookup key without
// its subject does not commit, in a group of one or of several, and the
// write connection comes out of the failed COMMIT usable, with nothing of
// the failed transaction committed later. (SQLite keeps the transaction
// open when COMMIT finds a deferred key broken; the driver rolls it back,
// modernc.org/sqlite's tx.Commit, which this test relies on and checks.)
func TestLookupsKeyDeferred(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(21, 1))
	insertLookupSubjects(t, db, r, 0, 300)
	// The table as it was before 0010: the key checked after each
	// statement.
	rewindLookups(t, db, `REFERENCES subjects (id)`, "0010_lookups_deferred.sql")
	before := allLookups(t, db)
	if len(before) != 900 || strings.Contains(lookupsSchema(t, db), "DEFERRED") {
		t.Fatalf("before the migration: %d keys, schema %s", len(before), lookupsSchema(t, db))
	}
	db.Close()

	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if s := lookupsSchema(t, db); !strings.Contains(s, "REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED") {
		t.Errorf("after the migration the key is not deferred: %s", s)
	}
	after := allLookups(t, db)
	if len(after) != len(before) {
		t.Errorf("after the migration: %d keys, want %d", len(after), len(before))
	}
	for k := range before {
		if !after[k] {
			t.Errorf("key %s lost by the migration", k)
		}
	}
	if p := queryPlan(t, db, `SELECT field FROM lookups WHERE subject_id = ?`, "sub_000001"); !strings.Contains(p, "lookups_subject_id") {
		t.Errorf("lookups by subject after the migration: plan %q, want the index lookups_subject_id", p)
	}

	orphan := orphanLookup(ctx)
	good := func(i int) func(tx custos.Tx) error {
		return func(tx custos.Tx) error {
			return tx.SetMeta(ctx, fmt.Sprintf("good-%d", i), "v")
		}
	}
	// A group of one, through Update.
	if err := db.Update(ctx, orphan); custos.ErrorCode(err) != custos.EINTERNAL || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("a lookup key without its subject: got %v, want EINTERNAL naming the foreign key", err)
	}
	if err := db.Update(ctx, good(0)); err != nil {
		t.Fatalf("the write after the failed commit: %v", err)
	}
	// A group of several: one member breaks the key, so the COMMIT
	// fails for all of them.
	errs := runGroup(t, db, good(1), orphan, good(2))
	for i, err := range errs {
		if custos.ErrorCode(err) != custos.EINTERNAL {
			t.Errorf("group member %d: got %v, want EINTERNAL (the group's commit failed)", i, err)
		}
	}
	if err := db.Update(ctx, good(3)); err != nil {
		t.Fatalf("the write after the failed group: %v", err)
	}
	var orphans, goods int
	if err := db.read.QueryRow(`SELECT (SELECT count(*) FROM lookups WHERE subject_id = 'sub_missing'),
		(SELECT count(*) FROM meta WHERE key LIKE 'good-%')`).Scan(&orphans, &goods); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 || goods != 2 {
		t.Errorf("stored: %d orphan keys and %d of the writes, want 0 and 2 (good-0 and good-3)", orphans, goods)
	}
	checkIntegrity(t, db)
}

// TestBatchInsertKeepsNoStatementJournal: a multi-row insert of lookup
// keys, which land on random leaves, keeps no statement journal (migration
// 0010 and Querier.InsertMany). The write connection's temp_store is set
// to FILE, so that a journal larger than SQLite's spill size (64 KiB)
// opens a file through the VFS, where it is counted; the same insert
// written as a plain INSERT, which may abort half way, opens one.
func TestBatchInsertKeepsNoStatementJournal(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	r := rand.New(rand.NewPCG(21, 2))
	for i := range 10 {
		insertLookupSubjects(t, db, r, i*500, 500)
	}
	conn, err := db.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var store int
	if _, err := conn.ExecContext(ctx, `PRAGMA temp_store = FILE`); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&store); err != nil || store != 1 {
		t.Fatalf("temp_store: %d, %v", store, err)
	}
	conn.Close()
	t.Cleanup(func() { db.write.ExecContext(ctx, `PRAGMA temp_store = MEMORY`) })

	batch := func(from int) []custos.Lookup {
		lks := make([]custos.Lookup, 400)
		for i := range lks {
			lks[i] = custos.Lookup{Field: "mobile", Hash: randomHash(r), SubjectID: custos.SubjectID(fmt.Sprintf("sub_%06d", from+i))}
		}
		return lks
	}
	n0 := subjournalOpens.Load()
	if err := db.Update(ctx, func(tx custos.Tx) error { return tx.InsertLookups(ctx, batch(0)) }); err != nil {
		t.Fatal(err)
	}
	if n := subjournalOpens.Load() - n0; n != 0 {
		t.Errorf("InsertLookups of 400 keys opened %d statement journals, want 0", n)
	}
	// The control: the same statement as a plain INSERT keeps one.
	n0 = subjournalOpens.Load()
	err = db.Update(ctx, func(tx custos.Tx) error {
		lks := batch(1000)
		args := make([]any, 0, 3*len(lks))
		for _, l := range lks {
			args = append(args, l.Field, l.Hash, string(l.SubjectID))
		}
		_, err := tx.(*Tx).exec(ctx, `INSERT INTO lookups (field, hash, subject_id) VALUES `+sqlutil.Values(len(lks), 3), args...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := subjournalOpens.Load() - n0; n == 0 {
		t.Errorf("a plain multi-row INSERT opened no statement journal: the test cannot see one")
	}
}

// TestLookupsHash16 (migration 0014): a store written before it, with
// 32-byte blind-index keys, comes out with every key cut to its first 16
// bytes and nothing else changed: each customer is found by the cut key,
// the index of keys by customer is used again, the foreign key is still
// deferred and enforced, and the database passes its integrity and
// foreign-key checks.
func TestLookupsHash16(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(21, 14))
	insertLookupSubjects(t, db, r, 0, 300) // random 32-byte keys, as before 0014
	// The table as 0001 and 0010 left it.
	rewindLookups(t, db, `REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED`, "0014_lookups_hash16.sql")
	before := allLookups(t, db)
	if len(before) != 900 {
		t.Fatalf("before the migration: %d keys, want 900", len(before))
	}
	db.Close()

	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// migrateFile sorts to files for the migration only; the writer's
	// statement journals stay in memory (TestBatchInsertKeepsNoStatementJournal).
	var store int
	if err := db.write.QueryRow(`PRAGMA temp_store`).Scan(&store); err != nil || store != 2 {
		t.Errorf("the write connection's temp_store after the migration: %d, %v; want 2 (MEMORY)", store, err)
	}
	after := allLookups(t, db)
	if len(after) != len(before) {
		t.Errorf("after the migration: %d keys, want %d", len(after), len(before))
	}
	for k := range before {
		f, rest, _ := strings.Cut(k, "/")
		h, s, _ := strings.Cut(rest, "/")
		if cut := f + "/" + h[:32] + "/" + s; !after[cut] { // hex: 16 bytes
			t.Errorf("key %s: want %s after the migration", k, cut)
		}
		if t.Failed() {
			break
		}
	}
	if s := lookupsSchema(t, db); !strings.Contains(s, "subject_id TEXT NOT NULL REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED,") {
		t.Errorf("after the migration the key is not the deferred foreign key: %s", s)
	}
	if p := queryPlan(t, db, `SELECT field FROM lookups WHERE subject_id = ?`, "sub_000001"); !strings.Contains(p, "lookups_subject_id") {
		t.Errorf("lookups by subject after the migration: plan %q, want the index lookups_subject_id", p)
	}
	// Found by the cut key, through the store.
	var one string
	for k := range after {
		one = k
		break
	}
	f, rest, _ := strings.Cut(one, "/")
	hx, want, _ := strings.Cut(rest, "/")
	var h []byte
	if _, err := fmt.Sscanf(hx, "%X", &h); err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx custos.Tx) error {
		got, err := tx.FindLookup(ctx, f, h)
		if err == nil && string(got) != want {
			t.Errorf("FindLookup(%s, %X): got %s, want %s", f, h, got, want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// The key is enforced.
	if err := db.Update(ctx, orphanLookup(ctx)); custos.ErrorCode(err) != custos.EINTERNAL || !strings.Contains(err.Error(), "FOREIGN KEY") {
		t.Errorf("a lookup key without its subject: got %v, want EINTERNAL naming the foreign key", err)
	}
	checkIntegrity(t, db)
}
