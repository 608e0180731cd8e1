package core_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"custos"
)

// auditFailing is the real SQLite store whose write transactions fail
// while failing is set: a read's audit append then cannot commit.
type auditFailing struct {
	custos.Store
	failing atomic.Bool
}

func (s *auditFailing) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	if s.failing.Load() {
		return custos.Errorf(custos.EINTERNAL, "Internal error.")
	}
	return s.Store.Update(ctx, fn)
}

// TestReadWithoutAuditReturnsNothing: reads fetch on a snapshot and append
// their audit event in a write transaction of their own; when that append
// fails, the read, the batch read, the lookup and the record list fail and return no data
// (STYLE §5: no access without its audit record).
func TestReadWithoutAuditReturnsNothing(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), nil)
	store := &auditFailing{Store: db}
	svc, admin, _, _ := newService(t, store)
	s, err := svc.CreateSubject(admin, []string{"account", "fulfilment", "legal-obligation"}, custos.NewSubject{
		Fields: map[string]string{"name": "王小明", "mobile": "13900003333"}, Provenance: prov})
	if err != nil {
		t.Fatal(err)
	}
	before := (&env{db: db}).auditCount(t)
	if got, err := svc.FindSubjectByID(admin, []string{"fulfilment"}, s.ID); err != nil || got.Fields["name"] == "" {
		t.Fatalf("read with a working store: %v, fields %v", err, got)
	}
	if after := (&env{db: db}).auditCount(t); after != before+1 {
		t.Fatalf("read appended %d audit events, want 1", after-before)
	}

	store.failing.Store(true)
	if got, err := svc.FindSubjectByID(admin, []string{"fulfilment"}, s.ID); custos.ErrorCode(err) != custos.EINTERNAL || got != nil {
		t.Fatalf("read whose audit append fails: got %v, %v; want EINTERNAL and nothing", got, err)
	}
	if got, err := svc.FindSubjectsByID(admin, []string{"fulfilment"}, []custos.SubjectID{s.ID}); custos.ErrorCode(err) != custos.EINTERNAL || got != nil {
		t.Fatalf("batch read whose audit append fails: got %v, %v; want EINTERNAL and nothing", got, err)
	}
	if got, err := svc.FindSubjectByLookup(admin, []string{"fulfilment"}, "mobile", "13900003333"); custos.ErrorCode(err) != custos.EINTERNAL || got != nil {
		t.Fatalf("lookup whose audit append fails: got %v, %v; want EINTERNAL and nothing", got, err)
	}
	if got, err := svc.FindRecords(admin, []string{"fulfilment"}, s.ID, ""); custos.ErrorCode(err) != custos.EINTERNAL || got != nil {
		t.Fatalf("record list whose audit append fails: got %v, %v; want EINTERNAL and nothing", got, err)
	}
}
