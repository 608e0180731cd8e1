package core_test

import (
	"testing"

	"custos"
	"custos/core"
)

// TestRetentionWindows: a sweep looks at a bounded window of the table in
// each transaction (ten batches' worth), so that a rule with few items
// due does not hold the store's writer while it searches the whole table
// for a batch (BENCHMARKS.md, forty-fourth session: two seconds a rule at a
// million customers). Due customers spread over several windows are all
// found, and nobody else is touched.
func TestRetentionWindows(t *testing.T) {
	e := newRetEnv(t, rulesJSON(`{"name": "r", "target": "subject", "period": "1y", "trigger": "last_activity", "action": "delete"}`))
	const customers, batch = 60, 2 // a window is 20 customers
	var ids []custos.SubjectID
	for range customers {
		ids = append(ids, e.create(t, map[string]string{"name": "王小明"}))
	}
	inactive := map[int]bool{4: true, 29: true, 54: true} // one in each of three windows
	for i, id := range ids {
		if !inactive[i] {
			if err := e.svc.MarkLifecycle(e.admin, id, custos.TriggerLastActivity, e.start.Add(200*day)); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.at(years(1) + day)
	batches := 0
	rep, err := e.svc.RunRetention(e.admin, core.RetentionOptions{BatchSize: batch, Progress: func(p core.RetentionProgress) {
		if p.Rule == "r" {
			batches++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if o := rep.Rules[0]; o.Deleted != len(inactive) {
		t.Errorf("deleted %d; want the %d inactive customers", o.Deleted, len(inactive))
	}
	for i, id := range ids {
		if got := e.subjectExists(t, id); got == inactive[i] {
			t.Errorf("customer %d (inactive %v) exists %v after the sweep", i, inactive[i], got)
		}
	}
	// Three windows of 20 with one item due each, and the window that
	// finds the table's end: four transactions. Without windows, the
	// first would have searched on to the second due customer (a full
	// batch), and the second to the table's end.
	if want := customers/(10*batch) + 1; batches != want {
		t.Errorf("the rule's sweep took %d transactions; want %d, a window each", batches, want)
	}
}
