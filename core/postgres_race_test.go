package core_test

// Races between custos nodes on one PostgreSQL database: two core.Service
// on two store handles (two "nodes") sharing a keyring and a signer, doing
// conflicting operations on one subject at the same moment. On SQLite
// writers are serialised by the database lock, so only PostgreSQL needs
// these: there a correction, an erasure and a record append on one subject
// must take turns (Tx.GetSubject locks the row in write transactions),
// never overwrite each other, and never fail with an internal error.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/audit"
	"custos/core"
	"custos/keys"
	"custos/postgres"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the admin connection
)

// pgRounds is how many times each race is run; each round is a fresh
// subject.
const pgRounds = 30

// pgNode is one custos node: a store handle and a service on it.
type pgNode struct {
	db  *postgres.DB
	svc *core.Service
}

// newPGNodes returns two nodes on one fresh schema of the test database,
// with the same keyring and signer, or skips t when no PostgreSQL test
// database is configured.
func newPGNodes(t *testing.T) (a, b pgNode, admin context.Context) {
	return newPGNodesWith(t, postgres.Options{Migrate: true})
}

// newPGNodesWith is newPGNodes with node b opened with opts.
func newPGNodesWith(t *testing.T, opts postgres.Options) (a, b pgNode, admin context.Context) {
	t.Helper()
	u := pgSchemaURL(t)
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	node := func(opts postgres.Options) pgNode {
		db := openPostgresWith(t, u, opts)
		return pgNode{db: db, svc: core.New(db, custos.DefaultCatalog(), ring, signer, nil)}
	}
	a, b = node(postgres.Options{Migrate: true}), node(opts)
	admin = custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_admin", Roles: []string{"admin"}})
	return a, b, admin
}

// openPostgres opens (and migrates) the store at u, closed when t ends.
func openPostgres(t *testing.T, u string) *postgres.DB {
	t.Helper()
	return openPostgresWith(t, u, postgres.Options{Migrate: true})
}

// openPostgresWith is openPostgres with opts.
func openPostgresWith(t *testing.T, u string, opts postgres.Options) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), u, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

// pgSchemaURL creates an empty schema in the test database, drops it when
// t ends, and returns a URL whose connections use only that schema.
func pgSchemaURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("CUSTOS_TEST_POSTGRES")
	if base == "" {
		t.Skip("CUSTOS_TEST_POSTGRES not set: PostgreSQL tests skipped (see .ci/run)")
	}
	rnd := make([]byte, 8)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	schema := "test_" + hex.EncodeToString(rnd)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	if _, err := admin.ExecContext(t.Context(), `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	// Registered first, so it runs after the nodes are closed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
		if err := admin.Close(); err != nil {
			t.Errorf("close admin connection: %v", err)
		}
	})
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema
	}
	pu, err := url.Parse(base)
	if err != nil {
		t.Fatalf("CUSTOS_TEST_POSTGRES is not a valid URL")
	}
	q := pu.Query()
	q.Set("search_path", schema)
	pu.RawQuery = q.Encode()
	return pu.String()
}

// together runs f and g at the same moment and returns their errors.
func together(f, g func() error) (ef, eg error) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { <-start; ef = f() })
	wg.Go(func() { <-start; eg = g() })
	close(start)
	wg.Wait()
	return ef, eg
}

// nilOrNotFound reports whether err is an acceptable outcome of losing a
// race against an erasure.
func nilOrNotFound(err error) bool {
	return err == nil || custos.ErrorCode(err) == custos.ENOTFOUND
}

// pgMobile returns a distinct valid mainland mobile number for round i.
func pgMobile(kind, i int) string { return fmt.Sprintf("139%02d%06d", kind, i) }

func pgCreate(t *testing.T, n pgNode, admin context.Context, fields map[string]string) custos.SubjectID {
	t.Helper()
	s, err := n.svc.CreateSubject(admin, []string{"account"}, custos.NewSubject{Fields: fields, Provenance: prov})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return s.ID
}

// TestPostgresConcurrentCorrections: two nodes correct different fields of
// one subject at once; neither correction may be lost (each used to write
// back the sealed fields it had read, overwriting the other's).
func TestPostgresConcurrentCorrections(t *testing.T) {
	a, b, admin := newPGNodes(t)
	const oldName, newName = "王小明", "王大明"
	for i := range pgRounds {
		oldMobile, newMobile := pgMobile(1, i), pgMobile(2, i)
		id := pgCreate(t, a, admin, map[string]string{"name": oldName, "mobile": oldMobile})
		name, mobile := newName, newMobile
		errA, errB := together(
			func() error {
				_, err := a.svc.UpdateSubject(admin, []string{"account"}, id, custos.SubjectUpdate{Fields: map[string]*string{"name": &name}, Provenance: prov})
				return err
			},
			func() error {
				_, err := b.svc.UpdateSubject(admin, []string{"account"}, id, custos.SubjectUpdate{Fields: map[string]*string{"mobile": &mobile}, Provenance: prov})
				return err
			})
		if errA != nil || errB != nil {
			t.Fatalf("round %d: concurrent corrections: name on a: %v; mobile on b: %v", i, errA, errB)
		}
		for _, n := range []pgNode{a, b} {
			s, err := n.svc.FindSubjectByID(admin, []string{"account"}, id)
			if err != nil {
				t.Fatalf("round %d: read: %v", i, err)
			}
			// Mobiles are stored normalised to E.164.
			if s.Fields["name"] != newName || s.Fields["mobile"] != "+86"+newMobile {
				t.Fatalf("round %d: after concurrent corrections name=%q mobile=%q, want %q and %q (a correction was lost)",
					i, s.Fields["name"], s.Fields["mobile"], newName, "+86"+newMobile)
			}
			if _, err := n.svc.FindSubjectByLookup(admin, []string{"account"}, "mobile", oldMobile); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Fatalf("round %d: lookup by the old mobile: got %v, want ENOTFOUND", i, err)
			}
			if s, err := n.svc.FindSubjectByLookup(admin, []string{"account"}, "mobile", newMobile); err != nil || s.ID != id {
				t.Fatalf("round %d: lookup by the new mobile: %v", i, err)
			}
		}
	}
}

// TestPostgresEraseWhileCorrecting: an erasure on one node and a
// correction on another at once. Either may lose the race (ENOTFOUND), but
// neither may fail internally (a lookup inserted for a subject being
// deleted, a deadlock), and the subject ends erased.
func TestPostgresEraseWhileCorrecting(t *testing.T) {
	a, b, admin := newPGNodes(t)
	for i := range pgRounds {
		oldMobile, newMobile := pgMobile(3, i), pgMobile(4, i)
		id := pgCreate(t, a, admin, map[string]string{"name": "赵大海", "mobile": oldMobile})
		mobile := newMobile
		errErase, errUpdate := together(
			func() error {
				_, err := a.svc.EraseSubject(admin, []string{"customer-service"}, id, "customer request")
				return err
			},
			func() error {
				_, err := b.svc.UpdateSubject(admin, []string{"account"}, id, custos.SubjectUpdate{Fields: map[string]*string{"mobile": &mobile}, Provenance: prov})
				return err
			})
		if !nilOrNotFound(errErase) || !nilOrNotFound(errUpdate) {
			t.Fatalf("round %d: erase on a: %v; correction on b: %v; want nil or ENOTFOUND each", i, errErase, errUpdate)
		}
		for _, n := range []pgNode{a, b} {
			if _, err := n.svc.FindSubjectByID(admin, []string{"account"}, id); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Fatalf("round %d: read after erasure: got %v, want ENOTFOUND", i, err)
			}
			for _, m := range []string{oldMobile, newMobile} {
				if _, err := n.svc.FindSubjectByLookup(admin, []string{"account"}, "mobile", m); custos.ErrorCode(err) != custos.ENOTFOUND {
					t.Fatalf("round %d: lookup %s after erasure: got %v, want ENOTFOUND", i, m, err)
				}
			}
		}
	}
}

// TestPostgresEraseWhileAppending: an erasure on one node and a record
// append on another at once: no internal error (a record inserted for a
// subject being deleted), no orphan record left behind.
func TestPostgresEraseWhileAppending(t *testing.T) {
	a, b, admin := newPGNodes(t)
	ctx := context.Background()
	for i := range pgRounds {
		id := pgCreate(t, a, admin, map[string]string{"name": "周芷若", "mobile": pgMobile(5, i)})
		errErase, errRecord := together(
			func() error {
				_, err := a.svc.EraseSubject(admin, []string{"customer-service"}, id, "customer request")
				return err
			},
			func() error {
				_, err := b.svc.CreateRecord(admin, []string{"fulfilment"}, id, custos.NewRecord{Type: "order",
					OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Data: map[string]any{"n": i}, Provenance: prov})
				return err
			})
		if !nilOrNotFound(errErase) || !nilOrNotFound(errRecord) {
			t.Fatalf("round %d: erase on a: %v; record on b: %v; want nil or ENOTFOUND each", i, errErase, errRecord)
		}
		for _, n := range []pgNode{a, b} {
			if _, err := n.svc.FindRecords(admin, []string{"fulfilment"}, id, ""); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Fatalf("round %d: records after erasure: got %v, want ENOTFOUND", i, err)
			}
			if _, err := n.svc.FindSubjectByID(admin, []string{"account"}, id); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Fatalf("round %d: read after erasure: got %v, want ENOTFOUND", i, err)
			}
		}
		// FindRecords answers ENOTFOUND once the data key is gone: look
		// at the rows themselves for an orphan record.
		if err := a.db.View(ctx, func(tx custos.Tx) error {
			rs, err := tx.ListRecords(ctx, id, "")
			if err != nil {
				return err
			}
			if len(rs) != 0 {
				return fmt.Errorf("%d records of the erased subject remain", len(rs))
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}

// TestPostgresConcurrentImports: two nodes import batches holding the same
// customer (same mobile) at the same moment. The lookup probe of both may
// find the key free; the later insert then finds it taken and the batch is
// run again, so exactly one node stores the customer, the other answers
// "duplicate" naming it, and neither fails.
func TestPostgresConcurrentImports(t *testing.T) {
	a, b, admin := newPGNodes(t)
	for i := range pgRounds {
		batch := func() []core.ImportInput {
			var rows []core.ImportInput
			for j := range 5 {
				rows = append(rows, core.ImportInput{Line: j + 1, Subject: custos.NewSubject{
					Fields: map[string]string{"name": "钱多多", "mobile": pgMobile(10+j, i)}, Provenance: prov}})
			}
			return rows
		}
		var resA, resB []*custos.ImportResult
		errA, errB := together(
			func() (err error) {
				resA, err = a.svc.ImportRows(admin, []string{"account"}, fmt.Sprintf("a-%d", i), batch())
				return err
			},
			func() (err error) {
				resB, err = b.svc.ImportRows(admin, []string{"account"}, fmt.Sprintf("b-%d", i), batch())
				return err
			})
		if errA != nil || errB != nil {
			t.Fatalf("round %d: concurrent imports: a: %v; b: %v", i, errA, errB)
		}
		for j := range 5 {
			ra, rb := resA[j], resB[j]
			stored, dup := ra, rb
			if rb.Status == custos.ImportStored {
				stored, dup = rb, ra
			}
			if stored.Status != custos.ImportStored || dup.Status != custos.ImportDuplicate || dup.SubjectID != stored.SubjectID {
				t.Fatalf("round %d, row %d: got %s %s and %s %s, want one stored and one duplicate of it",
					i, j, ra.Status, ra.SubjectID, rb.Status, rb.SubjectID)
			}
			s, err := a.svc.FindSubjectByLookup(admin, []string{"account"}, "mobile", pgMobile(10+j, i))
			if err != nil || s.ID != stored.SubjectID {
				t.Fatalf("round %d, row %d: lookup gives %v, %v; want %s", i, j, s, err, stored.SubjectID)
			}
		}
	}
	// One chain, no gap and no fork, with one import event per row.
	var events []*custos.AuditEvent
	if err := a.db.View(admin, func(tx custos.Tx) (err error) {
		events, err = tx.FindAuditEvents(admin, custos.AuditFilter{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	imports := 0
	for _, e := range events {
		if e.Action == custos.AuditSubjectImport {
			imports++
		}
	}
	if imports != 2*5*pgRounds {
		t.Errorf("got %d import events, want %d", imports, 2*5*pgRounds)
	}
	seq := func(yield func(*custos.AuditEvent, error) bool) {
		for _, e := range events {
			if !yield(e, nil) {
				return
			}
		}
	}
	if r := audit.Verify(seq, nil, nil); !r.OK {
		t.Errorf("audit chain after concurrent imports: %+v (problem %+v)", r, r.Problem)
	}
}

// TestPGDuplicateCreate: on PostgreSQL, where a create writes its data key,
// row and lookup keys in one statement (custos.NewSubjectInserter), a
// create refused as a duplicate still names the existing customer and
// leaves none of its own keys behind, and concurrent creates of one mobile
// number store exactly one customer (C5).
func TestPGDuplicateCreate(t *testing.T) {
	a, b, admin := newPGNodes(t)
	purposes := []string{"account", "fulfilment", "legal-obligation"}
	first, err := a.svc.CreateSubject(admin, purposes, custos.NewSubject{
		Fields: map[string]string{"name": "一号", "mobile": "13600000201", "email": "a@example.com"}, Provenance: prov})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.svc.CreateSubject(admin, purposes, custos.NewSubject{
		Fields: map[string]string{"name": "二号", "mobile": "13600000201", "email": "b@example.com"}, Provenance: prov})
	if ce := custos.AsError(err); ce == nil || ce.Code != custos.ECONFLICT || ce.ConflictID != string(first.ID) {
		t.Fatalf("duplicate create: got %v, want ECONFLICT naming %s", err, first.ID)
	}
	if _, err := a.svc.FindSubjectByLookup(admin, []string{"account"}, "email", "b@example.com"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("e-mail of the refused create: got %v, want ENOTFOUND", err)
	}

	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := []*core.Service{a.svc, b.svc}[i%2]
			_, errs[i] = svc.CreateSubject(admin, purposes, custos.NewSubject{
				Fields: map[string]string{"name": "三号", "mobile": "13600000202", "email": fmt.Sprintf("c%d@example.com", i)}, Provenance: prov})
		}()
	}
	wg.Wait()
	stored := 0
	for i, err := range errs {
		switch custos.ErrorCode(err) {
		case "":
			stored++
		case custos.ECONFLICT:
		default:
			t.Errorf("create %d: %v", i, err)
		}
	}
	if stored != 1 {
		t.Fatalf("%d of %d concurrent creates of one mobile number stored, want 1", stored, n)
	}
}
