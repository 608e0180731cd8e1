package core_test

import (
	"testing"
	"time"

	"custos"
	"custos/workday"
)

// TestRightsDeadlineAcrossAdjustedWeekend: 15 working days from Friday
// 2026-09-18 count Sunday 2026-09-20 and Saturday 2026-10-10, which the
// State Council made working days, and skip the Mid-Autumn and National
// Day holidays (R7; RULES.md "Customer requests").
func TestRightsDeadlineAcrossAdjustedWeekend(t *testing.T) {
	e := newRetEnv(t, "")
	filed := time.Date(2026, 9, 18, 12, 0, 0, 0, workday.Shanghai)
	got := e.svc.RightsDeadline(custos.RightsDelete, filed)
	want := time.Date(2026, 10, 16, 0, 0, 0, 0, workday.Shanghai) // the end of Thursday 2026-10-15
	if !got.Equal(want) {
		t.Errorf("deadline of a request filed %v: %v, want %v", filed, got, want)
	}
	e.svc.Rights.Deadlines = map[string]int{custos.RightsDelete: 1}
	if got := e.svc.RightsDeadline(custos.RightsDelete, filed); !got.Equal(time.Date(2026, 9, 21, 0, 0, 0, 0, workday.Shanghai)) {
		t.Errorf("one working day after Friday 2026-09-18 ends %v, want the end of Sunday 2026-09-20 (a make-up working day)", got)
	}
}

// TestDeletionKeepsThenFinishes: a deletion keeps an order restricted for
// its 3-year legal minimum, and the customer is crypto-shredded once that
// has passed (R4, L2; PIPL Art. 47).
func TestDeletionKeepsThenFinishes(t *testing.T) {
	e := newRetEnv(t, "")
	sub := e.create(t, map[string]string{"name": "王小明", "mobile": "13800138000"})
	e.record(t, sub, "order", e.start.Add(-time.Hour), map[string]any{"amount": "10.00"})
	q, err := e.svc.FileRightsRequest(e.admin, custos.NewRightsRequest{SubjectID: sub, Type: custos.RightsDelete, Channel: "phone",
		Verified: custos.VerifyStaff, Evidence: "ID card at the counter"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Status != custos.RightsCompleted || len(q.Retained) != 1 || q.Retained[0].Count != 1 {
		t.Fatalf("deletion: %+v", q)
	}
	if n, err := e.svc.FinishRetainedErasures(e.admin); err != nil || n != 0 {
		t.Fatalf("before the minimum has passed: finished %d, %v; want 0", n, err)
	}
	if got := len(e.storedRecords(t, sub)); got != 1 {
		t.Fatalf("kept records: %d, want 1", got)
	}
	e.at(years(3) + 2*day)
	if n, err := e.svc.FinishRetainedErasures(e.admin); err != nil || n != 1 {
		t.Fatalf("after the minimum: finished %d, %v; want 1", n, err)
	}
	if got := len(e.storedRecords(t, sub)); got != 0 {
		t.Errorf("records left after the minimum: %d", got)
	}
	q, err = e.svc.RightsRequest(e.admin, q.ID)
	if err != nil || len(q.Retained) != 0 || q.Steps[len(q.Steps)-1].Step != "retained data deleted" {
		t.Errorf("request after the minimum: %v %+v", err, q)
	}
}
