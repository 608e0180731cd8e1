package core_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/keys"
	"custos/sqlite"
)

type env struct {
	svc   *core.Service
	db    *sqlite.DB
	ring  *keys.Keyring
	admin context.Context
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := newEnvOn(t, openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), nil))
	e.svc.CheckpointEvery = 5
	return e
}

// openSQLite opens a migrated SQLite store at path whose clock is now
// (time.Now when nil), closed at cleanup.
func openSQLite(t testing.TB, path string, now func() time.Time) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Migrate: true, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// newService returns a service on store with fresh keys, the admin's
// context, and the keyring and signer.
func newService(t testing.TB, store custos.Store) (*core.Service, context.Context, *keys.Keyring, *keys.Signer) {
	t.Helper()
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := core.New(store, custos.DefaultCatalog(), ring, signer, nil)
	admin := custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_admin", Roles: []string{"admin"}})
	return svc, admin, ring, signer
}

// newEnvOn is an env on the SQLite store db.
func newEnvOn(t testing.TB, db *sqlite.DB) *env {
	t.Helper()
	var store custos.Store = db
	// CUSTOS_TEST_REPEAT=1 runs every Update function twice (repeatStore),
	// as a store may: the whole core suite must pass that way too.
	if os.Getenv("CUSTOS_TEST_REPEAT") != "" {
		store = &repeatStore{Store: db}
	}
	svc, admin, ring, _ := newService(t, store)
	return &env{svc: svc, db: db, ring: ring, admin: admin}
}

var prov = custos.Provenance{Collector: "test", Channel: "test", Source: "customer"}

func (e *env) create(t testing.TB, fields map[string]string) custos.SubjectID {
	t.Helper()
	s, err := e.svc.CreateSubject(e.admin, []string{"account", "fulfilment", "legal-obligation"}, custos.NewSubject{Fields: fields, Provenance: prov})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return s.ID
}

func (e *env) auditCount(t testing.TB) int64 {
	t.Helper()
	var n int64
	if err := e.db.View(context.Background(), func(tx custos.Tx) (err error) {
		n, _, err = tx.AuditHead(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSealedAtRestIntegrity: a sealed value moved to another subject or
// another field, or flipped by one bit, fails to open (S3; DESIGN.md
// "Keys": the AAD binds subject, field and key version).
func TestSealedAtRestIntegrity(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		tamper func(a, b *custos.StoredSubject)
	}{
		{"swapped between subjects", func(a, b *custos.StoredSubject) {
			a.Sealed["name"], b.Sealed["name"] = b.Sealed["name"], a.Sealed["name"]
		}},
		{"moved to another field", func(a, b *custos.StoredSubject) { a.Sealed["name"] = a.Sealed["address"] }},
		{"bit flipped", func(a, b *custos.StoredSubject) { a.Sealed["name"][len(a.Sealed["name"])-1] ^= 1 }},
		{"truncated", func(a, b *custos.StoredSubject) { a.Sealed["name"] = a.Sealed["name"][:10] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.create(t, map[string]string{"name": "王小明", "address": "上海市浦东新区世纪大道1号", "mobile": "13900001111"})
			b := e.create(t, map[string]string{"name": "赵大海", "address": "广州市天河区体育西路2号", "mobile": "13900002222"})
			if _, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, a); err != nil {
				t.Fatalf("untampered read: %v", err)
			}
			if err := e.db.Update(ctx, func(tx custos.Tx) error {
				sa, err := tx.GetSubject(ctx, a)
				if err != nil {
					return err
				}
				sb, err := tx.GetSubject(ctx, b)
				if err != nil {
					return err
				}
				tt.tamper(sa, sb)
				if err := tx.UpdateSubject(ctx, sa); err != nil {
					return err
				}
				return tx.UpdateSubject(ctx, sb)
			}); err != nil {
				t.Fatal(err)
			}
			_, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, a)
			if err == nil {
				t.Fatal("tampered ciphertext opened")
			}
			if got := custos.ErrorMessage(err); got != "Stored value failed authentication." && got != "Stored value is malformed." {
				t.Fatalf("error message %q", got)
			}
		})
	}
}

// TestWrongKeyVersion: a data key claimed to be wrapped by another master
// key version does not unwrap; a DEK version that does not match the one
// bound into the AAD does not open.
func TestWrongKeyVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "钱多多"})
	for _, tc := range []struct {
		name   string
		mutate func(*custos.DataKey)
		code   string
	}{
		{"unknown master key version", func(k *custos.DataKey) { k.KEKVersion = 7 }, custos.ESEALED},
		{"other data key version", func(k *custos.DataKey) { k.Version = 2 }, custos.EINTERNAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var orig custos.DataKey
			mut := func(f func(*custos.DataKey)) {
				if err := e.db.Update(ctx, func(tx custos.Tx) error {
					k, err := tx.GetDataKey(ctx, id)
					if err != nil {
						return err
					}
					if f == nil {
						*k = orig
					} else {
						orig = *k
						f(k)
					}
					return tx.UpdateDataKey(ctx, k)
				}); err != nil {
					t.Fatal(err)
				}
			}
			mut(tc.mutate)
			_, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id)
			if custos.ErrorCode(err) != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
			mut(nil)
			if _, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id); err != nil {
				t.Fatalf("restored key: %v", err)
			}
		})
	}
}

// TestEveryOperationAuditedOnce: each operation, allowed or refused, adds
// exactly one audit event (S5).
func TestEveryOperationAuditedOnce(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "孙悟空", "mobile": "13700001234"})
	mkt := custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_mkt", Roles: []string{"marketing"}})
	newMobile := "13700005678"
	ops := []struct {
		name string
		op   func() error
		code string
	}{
		{"read", func() error { _, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id); return err }, ""},
		{"lookup", func() error {
			_, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "mobile", "137 0000 1234")
			return err
		}, ""},
		{"lookup miss", func() error {
			_, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "mobile", "13700009999")
			return err
		}, custos.ENOTFOUND},
		{"refused purpose", func() error { _, err := e.svc.FindSubjectByID(mkt, []string{"risk-control"}, id); return err }, custos.EFORBIDDEN},
		{"invalid create", func() error {
			_, err := e.svc.CreateSubject(e.admin, []string{"account"}, custos.NewSubject{Fields: map[string]string{"mobile": "12345"}, Provenance: prov})
			return err
		}, custos.EINVALID},
		{"duplicate create", func() error {
			_, err := e.svc.CreateSubject(e.admin, []string{"account"}, custos.NewSubject{Fields: map[string]string{"mobile": "13700001234"}, Provenance: prov})
			return err
		}, custos.ECONFLICT},
		{"update", func() error {
			_, err := e.svc.UpdateSubject(e.admin, []string{"account"}, id, custos.SubjectUpdate{Fields: map[string]*string{"mobile": &newMobile}, Provenance: prov})
			return err
		}, ""},
		{"record", func() error {
			_, err := e.svc.CreateRecord(e.admin, []string{"fulfilment"}, id, custos.NewRecord{Type: "order", OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Data: map[string]any{"n": 1}, Provenance: prov})
			return err
		}, ""},
		{"records", func() error { _, err := e.svc.FindRecords(e.admin, []string{"fulfilment"}, id, ""); return err }, ""},
		{"erase", func() error {
			_, err := e.svc.EraseSubject(e.admin, []string{"customer-service"}, id, "test")
			return err
		}, ""},
		{"read erased", func() error { _, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id); return err }, custos.ENOTFOUND},
	}
	for _, op := range ops {
		before := e.auditCount(t)
		err := op.op()
		if custos.ErrorCode(err) != op.code {
			t.Fatalf("%s: got %v, want code %q", op.name, err, op.code)
		}
		if got := e.auditCount(t) - before; got != 1 {
			t.Errorf("%s: %d audit events, want 1", op.name, got)
		}
	}
	evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{SubjectID: &id, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var denies int
	for _, ev := range evs {
		if ev.Decision == custos.DecisionDeny {
			denies++
		}
	}
	if denies < 2 {
		t.Errorf("subject's audit trail has %d deny events, want the refused and not-found reads", denies)
	}
}

// TestErasureShredsKey: after erasure the data key is gone, the shred
// ledger names the subject, and lookups no longer find it (R4).
func TestErasureShredsKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "周芷若", "email": "zhou@example.com"})
	rc, err := e.svc.EraseSubject(e.admin, []string{"customer-service"}, id, "customer request")
	if err != nil {
		t.Fatal(err)
	}
	if rc.SubjectID != id || rc.Reason != "customer request" {
		t.Fatalf("receipt %+v", rc)
	}
	if err := e.db.View(ctx, func(tx custos.Tx) error {
		if _, err := tx.GetDataKey(ctx, id); custos.ErrorCode(err) != custos.ENOTFOUND {
			return errors.New("data key survived erasure")
		}
		shreds, err := tx.ListShreds(ctx, 0)
		if err != nil {
			return err
		}
		if len(shreds) != 1 || shreds[0].SubjectID != id || shreds[0].ActorID != "prn_admin" {
			return errors.New("shred ledger does not record the erasure")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "email", "zhou@example.com"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("lookup after erasure: %v", err)
	}
	// The address is free for a new customer again.
	e.create(t, map[string]string{"email": "zhou@example.com"})
}

// TestRotateWhileServing: a service that still holds the old keyring reads
// data keys re-wrapped under a new master key version by reloading.
func TestRotateWhileServing(t *testing.T) {
	e := newEnv(t)
	ids := []custos.SubjectID{e.create(t, map[string]string{"name": "甲"}), e.create(t, map[string]string{"name": "乙"})}
	next, err := e.ring.Rotate(nil)
	if err != nil {
		t.Fatal(err)
	}
	other := core.New(e.db, custos.DefaultCatalog(), next, nil, nil)
	n, err := other.Rewrap(context.Background(), next, nil)
	if err != nil || n != 2 {
		t.Fatalf("rewrap: %d, %v", n, err)
	}
	if _, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, ids[0]); custos.ErrorCode(err) != custos.ESEALED {
		t.Fatalf("without reload: got %v, want ESEALED", err)
	}
	e.svc.Reload = func() (*keys.Keyring, error) { return next, nil }
	for _, id := range ids {
		s, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id)
		if err != nil {
			t.Fatalf("after reload: %v", err)
		}
		if s.Fields["name"] == "" {
			t.Fatal("name not returned")
		}
	}
	use, err := e.svc.KeyUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if use[1] != 0 || use[2] != 2 {
		t.Fatalf("key usage %v, want all on v2", use)
	}
}

// TestImportRowsResume: a batch run twice stores each row once; invalid
// and duplicate rows are answered with reasons (C5).
func TestImportRowsResume(t *testing.T) {
	e := newEnv(t)
	rows := []core.ImportInput{
		{Line: 2, Subject: custos.NewSubject{Fields: map[string]string{"mobile": "13600000001", "name": "一号"}, Provenance: prov}},
		{Line: 3, Subject: custos.NewSubject{Fields: map[string]string{"mobile": "1360000"}, Provenance: prov}},
		{Line: 4, Subject: custos.NewSubject{Fields: map[string]string{"mobile": "+86 136 0000 0001"}, Provenance: prov}},
		{Line: 5, Subject: custos.NewSubject{Fields: map[string]string{"mobile": "13600000005", "shoe": "42"}, Provenance: prov}},
	}
	want := []string{custos.ImportStored, custos.ImportRejected, custos.ImportDuplicate, custos.ImportRejected}
	first, err := e.svc.ImportRows(e.admin, []string{"account"}, "job-1", rows)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range first {
		got = append(got, r.Status)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if first[1].Violations[0].Field != "mobile" || first[3].Violations[0].Field != "shoe" {
		t.Fatalf("violations %+v %+v", first[1].Violations, first[3].Violations)
	}
	if first[2].SubjectID != first[0].SubjectID {
		t.Fatal("duplicate does not name the existing subject")
	}
	again, err := e.svc.ImportRows(e.admin, []string{"account"}, "job-1", rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.Status != custos.ImportAlready {
			t.Fatalf("line %d on resume: %s, want already", rows[i].Line, r.Status)
		}
	}
	if again[0].SubjectID != first[0].SubjectID {
		t.Fatal("resume lost the stored subject id")
	}
}

// TestDuplicateLeavesNothing: a create or import row refused as a duplicate
// on its last lookup key leaves none of its other keys behind, so the same
// e-mail with a new mobile is accepted afterwards (C5; the create path no
// longer probes before inserting, and the import path only when its job
// has found stored keys before: importProbes).
func TestDuplicateLeavesNothing(t *testing.T) {
	e := newEnv(t)
	a := e.create(t, map[string]string{"name": "一号", "mobile": "13600000101", "email": "a@example.com"})
	// Lookup keys are inserted in name order: email, member_no, then mobile,
	// which is the duplicate.
	_, err := e.svc.CreateSubject(e.admin, []string{"account", "fulfilment", "legal-obligation"}, custos.NewSubject{
		Fields: map[string]string{"name": "二号", "mobile": "13600000101", "email": "b@example.com", "member_no": "M0000102"}, Provenance: prov})
	if ce := custos.AsError(err); ce == nil || ce.Code != custos.ECONFLICT || ce.ConflictID != string(a) {
		t.Fatalf("duplicate create: got %v, want ECONFLICT naming %s", err, a)
	}
	if _, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "email", "b@example.com"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("e-mail of the refused create: got %v, want ENOTFOUND", err)
	}
	e.create(t, map[string]string{"name": "二号", "mobile": "13600000102", "email": "b@example.com", "member_no": "M0000102"})

	res, err := e.svc.ImportRows(e.admin, []string{"account"}, "job-dup", []core.ImportInput{
		{Line: 2, Subject: custos.NewSubject{Fields: map[string]string{"email": "c@example.com", "mobile": "13600000101"}, Provenance: prov}},
		{Line: 3, Subject: custos.NewSubject{Fields: map[string]string{"email": "c@example.com", "mobile": "13600000103"}, Provenance: prov}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != custos.ImportDuplicate || res[1].Status != custos.ImportStored {
		t.Fatalf("import statuses %s, %s; want duplicate, stored", res[0].Status, res[1].Status)
	}
}
