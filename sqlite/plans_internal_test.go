package sqlite

import (
	"strings"
	"testing"
	"time"

	"custos"
	"custos/internal/sqlutil"
	"custos/internal/sqlutil/sqlutiltest"
)

// TestScanSubjectsEventClockPlan: ScanSubjects with a lifecycle event's
// clock goes through that event's rows (index
// subject_lifecycle_event_subject) and reaches a customer's row by its id,
// instead of going through every customer in id order with a subquery
// each. The job leader runs it every minute for retained erasures that are
// due (core.FinishRetainedErasures; BENCHMARKS.md, forty-fourth session).
func TestScanSubjectsEventClockPlan(t *testing.T) {
	db := openInternal(t)
	ctx := t.Context()
	if _, err := db.write.ExecContext(ctx, `WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000)
		INSERT INTO subjects (id, sealed, created_at, updated_at) SELECT printf('sub_%08d', n), x'01', 0, 0 FROM g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `INSERT INTO subject_lifecycle (subject_id, event, at)
		VALUES ('sub_00000007', 'deletion_retained_until', 1), ('sub_00012345', 'deletion_retained_until', 2)`); err != nil {
		t.Fatal(err)
	}
	q := sqlutiltest.Capture{}
	if _, err := (sqlutil.Stmts{Q: &q}).ScanSubjects(ctx, custos.SubjectScan{Clock: "deletion_retained_until", Before: time.Now(), Limit: 200}); err != nil {
		t.Fatal(err)
	}
	query, args := q.Statement()
	var plan []string
	rows, err := db.read.QueryContext(ctx, `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(plan, "\n")
	if !strings.Contains(all, "subject_lifecycle_event_subject (event=? AND subject_id>?)") {
		t.Errorf("the scan does not go through the event's rows in customer order:\n%s", all)
	}
	for _, line := range plan {
		if strings.Contains(line, " s ") && !strings.Contains(line, "(id=?)") {
			t.Errorf("customers are read other than by id: %q in\n%s", line, all)
		}
	}
	// And it finds them.
	var got []*custos.ScannedSubject
	err = db.View(ctx, func(tx custos.Tx) (err error) {
		got, err = tx.ScanSubjects(ctx, custos.SubjectScan{Clock: "deletion_retained_until", Before: time.Now(), Limit: 200})
		return err
	})
	if err != nil || len(got) != 2 || got[0].ID != "sub_00000007" || got[1].ID != "sub_00012345" {
		t.Errorf("ScanSubjects: %v, %v; want sub_00000007 and sub_00012345", got, err)
	}
}
