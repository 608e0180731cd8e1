// Package storetest is the contract suite every custos.Store adapter must
// pass (SQLite always, PostgreSQL when configured). It checks storage only:
// round trips, error codes, ordering, transactions and concurrency.
package storetest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"custos"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// OpenFunc returns a fresh, empty, migrated store whose clock is now. It
// registers the store's cleanup with t.
type OpenFunc = func(t testing.TB, now func() time.Time) custos.Store

// Run runs the contract suite; each subtest opens its own store.
func Run(t *testing.T, open OpenFunc) { RunOnly(t, open) }

// RunOnly runs the contract suite's tests named, or all of them when none
// is: for a store with more than one way to run a transaction, whose
// other way matters to only a few.
func RunOnly(t *testing.T, open OpenFunc, names ...string) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open OpenFunc)
	}{
		{name: "Subject", fn: testSubject},
		{name: "SubjectErrors", fn: testSubjectErrors},
		{name: "DataKey", fn: testDataKey},
		{name: "DataKeyList", fn: testDataKeyList},
		{name: "Lookup", fn: testLookup},
		{name: "ReadSubject", fn: testReadSubject},
		{name: "LookupConflict", fn: testLookupConflict},
		{name: "NewSubject", fn: testNewSubject},
		{name: "Record", fn: testRecord},
		{name: "Shred", fn: testShred},
		{name: "EraseSubjectRows", fn: testEraseSubjectRows},
		{name: "Notice", fn: testNotice},
		{name: "Consent", fn: testConsent},
		{name: "RightsRequest", fn: testRightsRequest},
		{name: "ImportRow", fn: testImportRow},
		{name: "Batch", fn: testBatch},
		{name: "BatchRecords", fn: testBatchRecords},
		{name: "Principal", fn: testPrincipal},
		{name: "APIKey", fn: testAPIKey},
		{name: "PrincipalUpdate", fn: testPrincipalUpdate},
		{name: "Plan", fn: testPlan},
		{name: "Grant", fn: testGrant},
		{name: "Audit", fn: testAudit},
		{name: "AuditFilter", fn: testAuditFilter},
		{name: "Checkpoint", fn: testCheckpoint},
		{name: "Meta", fn: testMeta},
		{name: "Rollback", fn: testRollback},
		{name: "ViewReadOnly", fn: testViewReadOnly},
		{name: "Now", fn: testNow},
		{name: "ConcurrentAudit", fn: testConcurrentAudit},
		{name: "OTP", fn: testOTP},
		{name: "LockKey", fn: testLockKey},
		{name: "Outbox", fn: testOutbox},
		{name: "WebhookDelivery", fn: testWebhookDelivery},
		{name: "ConcurrentClaims", fn: testConcurrentClaims},
		{name: "Lifecycle", fn: testLifecycle},
		{name: "Restrict", fn: testRestrict},
		{name: "ScanRecords", fn: testScanRecords},
		{name: "ScanSubjects", fn: testScanSubjects},
		{name: "Anonymised", fn: testAnonymised},
		{name: "Hold", fn: testHold},
		{name: "Certificate", fn: testCertificate},
		{name: "Dump", fn: testDump},
	}
	ran := 0
	for _, tt := range tests {
		if len(names) > 0 && !slices.Contains(names, tt.name) {
			continue
		}
		ran++
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open)
		})
	}
	if ran == 0 || (len(names) > 0 && ran != len(names)) {
		t.Fatalf("storetest: ran %d tests of %q", ran, names)
	}
}

// t0 is the suite's reference time: microsecond precision, so it must
// round-trip exactly.
var t0 = time.Date(2026, 3, 1, 9, 30, 15, 123456000, time.UTC)

// at returns t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// clock is a settable clock for the store.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *clock { return &clock{now: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// openStore opens a fresh store on a fixed clock at t0.
func openStore(t *testing.T, open OpenFunc) custos.Store {
	t.Helper()
	return open(t, newClock(t0).Now)
}

// update runs fn in a write transaction and fails the test on error.
func update(t *testing.T, s custos.Store, fn func(ctx context.Context, tx custos.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := s.Update(ctx, func(tx custos.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// view runs fn in a read transaction and fails the test on error.
func view(t *testing.T, s custos.Store, fn func(ctx context.Context, tx custos.Tx) error) {
	t.Helper()
	ctx := t.Context()
	if err := s.View(ctx, func(tx custos.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := custos.ErrorCode(err); got != code {
		t.Errorf("%s: got code %q (%v), want %q", what, got, err, code)
	}
}

// must fails the test on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// diff compares want and got; nil and empty slices and maps are equal
// (adapters may return either) and times compare with Equal.
func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// wantUTC fails unless tm is in UTC: stored times come back in UTC.
func wantUTC(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if tm.Location() != time.UTC {
		t.Errorf("%s: got location %v, want UTC", what, tm.Location())
	}
}
