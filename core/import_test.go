package core_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"custos"
	"custos/audit"
	"custos/core"
)

// TestImportBatchAudit: a batch's events are chained in line order, one
// per row that is not a parse error (stored, duplicate or invalid), with
// signed checkpoints at every CheckpointEvery seq, and the log verifies. A
// line sent twice in one batch is answered "already" the second time.
func TestImportBatchAudit(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), nil)
	svc, admin, _, signer := newService(t, db)
	svc.CheckpointEvery = 5
	var rows []core.ImportInput
	for i := range 12 {
		rows = append(rows, core.ImportInput{Line: i + 2, Subject: custos.NewSubject{
			Fields: map[string]string{"name": "导入", "mobile": fmt.Sprintf("1370000%04d", i)}, Provenance: prov}})
	}
	rows[3].Subject.Fields["mobile"] = "137"                            // invalid
	rows[6].Subject.Fields["mobile"] = rows[1].Subject.Fields["mobile"] // duplicate of line 3
	rows[9] = core.ImportInput{Line: 11, ParseError: "column_count"}    // not audited
	rows = append(rows, rows[0])                                        // line 2 again
	res, err := svc.ImportRows(admin, []string{"account"}, "job-audit", rows)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{5: custos.ImportRejected, 8: custos.ImportDuplicate, 11: custos.ImportRejected}
	for i, r := range res {
		w, ok := want[r.Line]
		if !ok {
			w = custos.ImportStored
		}
		if i == len(res)-1 {
			w = custos.ImportAlready
		}
		if r.Status != w {
			t.Errorf("row %d (line %d): %s, want %s", i, r.Line, r.Status, w)
		}
	}
	if last := res[len(res)-1]; last.Previous != custos.ImportStored || last.SubjectID != res[0].SubjectID {
		t.Errorf("line 2 sent again: previous %q, subject %q; want stored, %q", last.Previous, last.SubjectID, res[0].SubjectID)
	}
	if res[6].SubjectID != res[1].SubjectID {
		t.Errorf("duplicate names %q, want %q", res[6].SubjectID, res[1].SubjectID)
	}

	var (
		events []*custos.AuditEvent
		cps    []*custos.AuditCheckpoint
	)
	if err := db.View(context.Background(), func(tx custos.Tx) (err error) {
		if events, err = tx.FindAuditEvents(context.Background(), custos.AuditFilter{}); err != nil {
			return err
		}
		cps, err = tx.ListCheckpoints(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var imports []*custos.AuditEvent
	for _, e := range events {
		if e.Action == custos.AuditSubjectImport {
			imports = append(imports, e)
		}
	}
	// 12 rows, one of them a parse error; the repeated line is not audited again.
	if len(imports) != 11 {
		t.Fatalf("got %d import events, want 11", len(imports))
	}
	for i := 1; i < len(imports); i++ {
		if imports[i].Seq != imports[i-1].Seq+1 {
			t.Errorf("import events not consecutive: seq %d after %d", imports[i].Seq, imports[i-1].Seq)
		}
	}
	if imports[1].SubjectID != res[1].SubjectID || imports[3].Decision != custos.DecisionDeny || imports[6].Reason != custos.ECONFLICT {
		t.Errorf("events out of line order: %+v", imports[:7])
	}
	wantCps := len(events) / 5
	if len(cps) != wantCps {
		t.Errorf("got %d checkpoints for %d events, want %d", len(cps), len(events), wantCps)
	}
	for _, c := range cps {
		if c.Seq%5 != 0 {
			t.Errorf("checkpoint at seq %d, want a multiple of 5", c.Seq)
		}
	}
	seq := func(yield func(*custos.AuditEvent, error) bool) {
		for _, e := range events {
			if !yield(e, nil) {
				return
			}
		}
	}
	if r := audit.Verify(seq, cps, signer.Public()); !r.OK || r.Checkpoints != wantCps {
		t.Errorf("audit verify: %+v (problem %+v)", r, r.Problem)
	}
}
