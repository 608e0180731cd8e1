package core_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"custos"
	"custos/audit"
	"custos/core"
	"custos/keys"
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

// importStores runs fn on a fresh SQLite store, and on a fresh PostgreSQL
// schema when CUSTOS_TEST_POSTGRES is set.
func importStores(t *testing.T, fn func(t *testing.T, store custos.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), nil))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, openPostgres(t, pgSchemaURL(t))) // skips without CUSTOS_TEST_POSTGRES
	})
}

// auditLog returns the whole audit log and its checkpoints, and checks
// that the chain and the signed checkpoints verify.
func auditLog(t *testing.T, store custos.Store, signer *keys.Signer) []*custos.AuditEvent {
	t.Helper()
	var (
		events []*custos.AuditEvent
		cps    []*custos.AuditCheckpoint
	)
	if err := store.View(t.Context(), func(tx custos.Tx) (err error) {
		if events, err = tx.FindAuditEvents(t.Context(), custos.AuditFilter{}); err != nil {
			return err
		}
		cps, err = tx.ListCheckpoints(t.Context())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	seq := func(yield func(*custos.AuditEvent, error) bool) {
		for _, e := range events {
			if !yield(e, nil) {
				return
			}
		}
	}
	if r := audit.Verify(seq, cps, signer.Public()); !r.OK {
		t.Errorf("audit verify: %+v (problem %+v)", r, r.Problem)
	}
	return events
}

var importRecordPurposes = []string{"personalisation"}

// recordRow is a row of name and mobile, with a consent to personalisation
// (under notice 1) when consent is set.
func recordRow(line int, mobile string, consent bool, recs ...custos.NewRecord) (core.ImportInput, []custos.NewRecord) {
	in := core.ImportInput{Line: line, Subject: custos.NewSubject{
		Fields: map[string]string{"name": "导入", "mobile": mobile}, Provenance: prov}}
	if consent {
		yes := true
		in.Subject.Consent = &custos.ConsentCapture{NoticeVersion: 1, Channel: "app", Evidence: "form 7",
			Decisions: []custos.ConsentDecision{{Purpose: "personalisation", Granted: &yes}}}
	}
	return in, recs
}

func newRecord(typ string, daysAgo int, data map[string]any) custos.NewRecord {
	return custos.NewRecord{Type: typ, OccurredAt: time.Now().UTC().Add(-time.Duration(daysAgo) * 24 * time.Hour).Truncate(time.Microsecond),
		Data: data, Provenance: prov}
}

// TestImportRowsWithRecords: the records of the rows a batch stores are
// created in its transaction, readable and decrypted as CreateRecord's,
// each with its own audit event; rows refused, found duplicate or sent
// again get none (a bad record on such a row does not matter); consents
// captured with the rows are stored with increasing seqs; the log
// verifies.
func TestImportRowsWithRecords(t *testing.T) {
	importStores(t, func(t *testing.T, store custos.Store) {
		svc, admin, _, signer := newService(t, store)
		svc.CheckpointEvery = 4
		publishPersonalisation(t, svc, admin)
		var (
			rows []core.ImportInput
			recs [][]custos.NewRecord
		)
		add := func(in core.ImportInput, r []custos.NewRecord) { rows, recs = append(rows, in), append(recs, r) }
		add(recordRow(2, "13700000002", true,
			newRecord("browsing", 3, map[string]any{"sku": "A-1"}),
			newRecord("order", 2, map[string]any{"order_no": "O-9", "amount": "128.00"}),
			newRecord("search", 1, map[string]any{"q": "tea"})))
		add(recordRow(3, "13700000002", true, custos.NewRecord{Type: "order"})) // duplicate of line 2: its bad record is never tried
		add(recordRow(4, "137", true, newRecord("order", 1, nil)))              // invalid mobile: rejected
		add(recordRow(5, "13700000005", true))                                  // stored, no records
		add(recordRow(6, "13700000006", true, newRecord("order", 5, map[string]any{"order_no": "O-6"})))
		res, err := svc.ImportRowsWithRecords(admin, []string{"account"}, "job-rec", rows,
			core.ImportRecords{Purposes: importRecordPurposes, ByRow: recs})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{custos.ImportStored, custos.ImportDuplicate, custos.ImportRejected, custos.ImportStored, custos.ImportStored}
		for i, r := range res {
			if r.Status != want[i] {
				t.Fatalf("line %d: %s, want %s", r.Line, r.Status, want[i])
			}
		}
		for _, i := range []int{0, 3, 4} {
			got, err := svc.FindRecords(admin, importRecordPurposes, res[i].SubjectID, "")
			if err != nil {
				t.Fatalf("FindRecords line %d: %v", res[i].Line, err)
			}
			if len(got) != len(recs[i]) {
				t.Fatalf("line %d: got %d records, want %d", res[i].Line, len(got), len(recs[i]))
			}
			for _, in := range recs[i] {
				found := false
				for _, r := range got {
					if r.Type == in.Type && r.OccurredAt.Equal(in.OccurredAt) {
						found = true
						if diff := cmp.Diff(in.Data, r.Data); diff != "" {
							t.Errorf("line %d %s data (-sent +read):\n%s", res[i].Line, in.Type, diff)
						}
						if r.Provenance.Collector != prov.Collector || r.Provenance.Time.IsZero() {
							t.Errorf("line %d %s provenance: %+v", res[i].Line, in.Type, r.Provenance)
						}
					}
				}
				if !found {
					t.Errorf("line %d: no %s record read back", res[i].Line, in.Type)
				}
			}
		}
		if err := store.View(t.Context(), func(tx custos.Tx) error {
			for _, i := range []int{0, 3, 4} {
				cs, err := tx.ListConsents(t.Context(), res[i].SubjectID)
				if err != nil {
					return err
				}
				if len(cs) != 1 || cs[0].Purpose != "personalisation" || !cs[0].Granted() || cs[0].Seq == 0 || cs[0].Sealed == nil {
					t.Errorf("line %d consents: %+v, want one sealed grant of personalisation with a seq", res[i].Line, cs)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		// The same lines again: all "already", no second record.
		res2, err := svc.ImportRowsWithRecords(admin, []string{"account"}, "job-rec", rows,
			core.ImportRecords{Purposes: importRecordPurposes, ByRow: recs})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res2 {
			if r.Status != custos.ImportAlready {
				t.Errorf("line %d sent again: %s, want already", r.Line, r.Status)
			}
		}
		events := auditLog(t, store, signer)
		var created []custos.SubjectID
		for _, e := range events {
			if e.Action == custos.AuditRecordCreate {
				if e.Decision != custos.DecisionAllow || !slices.Equal(e.Purposes, importRecordPurposes) || len(e.Fields) != 1 {
					t.Errorf("record event: %+v", e)
				}
				created = append(created, e.SubjectID)
			}
		}
		wantCreated := []custos.SubjectID{res[0].SubjectID, res[0].SubjectID, res[0].SubjectID, res[4].SubjectID}
		if !slices.Equal(created, wantCreated) {
			t.Errorf("record.create events for %v, want %v", created, wantCreated)
		}
	})
}

// TestImportRowsRecordRefused: a record that breaks a rule, or that the
// customer's consents do not cover, refuses the whole batch — no subject,
// consent, record or import row of it is stored — with an EINVALID error
// naming the line, the record and the rule, and one audited refusal; the
// decision on consent is the one CreateRecord takes. Sent again fixed,
// the batch is stored as new.
func TestImportRowsRecordRefused(t *testing.T) {
	tests := []struct {
		name      string
		consent   bool
		bad       custos.NewRecord
		field     string
		rule      string
		createErr bool // CreateRecord refuses the same record for a subject with the same consents
	}{
		{name: "occurred_at missing", consent: true, bad: custos.NewRecord{Type: "order", Provenance: prov},
			field: "records[1].occurred_at", rule: "required", createErr: true},
		{name: "unknown type", consent: true, bad: newRecord("telepathy", 1, nil),
			field: "records[1].type", rule: "field_unknown", createErr: true},
		{name: "no consent", consent: false, bad: newRecord("browsing", 1, nil),
			field: "records[0].type", rule: "no_consent", createErr: true}, // alone: without consent no record rests on personalisation
		{name: "consented", consent: true, bad: newRecord("browsing", 1, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			importStores(t, func(t *testing.T, store custos.Store) {
				svc, admin, _, signer := newService(t, store)
				publishPersonalisation(t, svc, admin)
				ok := newRecord("order", 2, map[string]any{"order_no": "O-1"})
				r2, rec2 := recordRow(2, "13700000012", true, ok)
				r3, rec3 := recordRow(3, "13700000013", tt.consent, ok, tt.bad)
				if !tt.consent {
					rec3 = rec3[1:]
				}
				rows, recs := []core.ImportInput{r2, r3}, [][]custos.NewRecord{rec2, rec3}

				// CreateRecord's answer for the same record, on a subject
				// with the same consents, stored on its own.
				ref, err := svc.CreateSubject(admin, []string{"account"}, custos.NewSubject{Fields: map[string]string{"name": "参照"},
					Provenance: prov, Consent: r3.Subject.Consent})
				if err != nil {
					t.Fatal(err)
				}
				_, createErr := svc.CreateRecord(admin, importRecordPurposes, ref.ID, tt.bad)
				if (createErr != nil) != tt.createErr {
					t.Fatalf("CreateRecord: %v, want error %v", createErr, tt.createErr)
				}
				before := len(auditLog(t, store, signer))

				res, err := svc.ImportRowsWithRecords(admin, []string{"account"}, "job-bad", rows,
					core.ImportRecords{Purposes: importRecordPurposes, ByRow: recs})
				if !tt.createErr {
					if err != nil || res[1].Status != custos.ImportStored {
						t.Fatalf("batch: %v, %+v; want stored as CreateRecord stored it", err, res)
					}
					return
				}
				e := custos.AsError(err)
				if e == nil || e.Code != custos.EINVALID {
					t.Fatalf("batch: %v, want EINVALID", err)
				}
				if !strings.Contains(e.Message, "Line 3") || len(e.Violations) == 0 || e.Violations[0].Field != tt.field || e.Violations[0].Rule != tt.rule {
					t.Errorf("batch error %q %+v, want line 3, %s %s", e.Message, e.Violations, tt.field, tt.rule)
				}
				if ce := custos.AsError(createErr); ce == nil || len(ce.Violations) == 0 || ce.Violations[0].Rule != tt.rule {
					t.Errorf("CreateRecord refused %+v, want rule %s as the batch", createErr, tt.rule)
				}
				if err := store.View(t.Context(), func(tx custos.Tx) error {
					n, err := tx.CountSubjects(t.Context())
					if err != nil {
						return err
					}
					if n != 1 { // the reference subject
						t.Errorf("%d subjects after the refused batch, want only the reference", n)
					}
					done, err := tx.GetImportRows(t.Context(), "job-bad", []int{2, 3})
					if err != nil {
						return err
					}
					if len(done) != 0 {
						t.Errorf("import rows of the refused batch: %v", done)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				events := auditLog(t, store, signer)
				if len(events) != before+1 {
					t.Fatalf("%d events after the refused batch, want %d (the refusal)", len(events), before+1)
				}
				last := events[len(events)-1]
				if last.Action != custos.AuditRecordCreate || last.Decision != custos.DecisionDeny || last.Reason != custos.EINVALID || last.SubjectID != "" {
					t.Errorf("refusal event %+v", last)
				}

				// Fixed, the batch is new: stored, not "already".
				recs[1] = recs[1][:len(recs[1])-1]
				res, err = svc.ImportRowsWithRecords(admin, []string{"account"}, "job-bad", rows,
					core.ImportRecords{Purposes: importRecordPurposes, ByRow: recs})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range res {
					if r.Status != custos.ImportStored {
						t.Errorf("line %d fixed: %s, want stored", r.Line, r.Status)
					}
				}
				if tt.consent {
					got, err := svc.FindRecords(admin, importRecordPurposes, res[1].SubjectID, "")
					if err != nil || len(got) != 1 {
						t.Errorf("records of line 3 fixed: %d, %v; want 1", len(got), err)
					}
				}
				auditLog(t, store, signer)
			})
		})
	}
}

// TestImportConsentReceipts: a row stored with a consent captured gets the
// signed receipt of that consent in its result, as CreateSubject returns
// one (C4); a duplicate, a rejected row and a line sent again get none.
// With NoReceipts (custos seed) the consents are stored but no receipt is
// signed or returned.
func TestImportConsentReceipts(t *testing.T) {
	importStores(t, func(t *testing.T, store custos.Store) {
		svc, admin, _, _ := newService(t, store)
		publishPersonalisation(t, svc, admin)
		var rows []core.ImportInput
		for _, r := range []struct {
			line    int
			mobile  string
			consent bool
		}{{1, "13700000011", true}, {2, "13700000011", true}, {3, "137", true}, {4, "13700000014", false}, {5, "13700000015", true}} {
			in, _ := recordRow(r.line, r.mobile, r.consent)
			rows = append(rows, in)
		}
		res, err := svc.ImportRows(admin, []string{"account"}, "job-receipts", rows)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus := []string{custos.ImportStored, custos.ImportDuplicate, custos.ImportRejected, custos.ImportStored, custos.ImportStored}
		wantReceipt := []bool{true, false, false, false, true}
		for i, r := range res {
			if r.Status != wantStatus[i] {
				t.Fatalf("line %d: %s, want %s", r.Line, r.Status, wantStatus[i])
			}
			rc := r.ConsentReceipt
			if (rc != nil) != wantReceipt[i] {
				t.Fatalf("line %d (%s): receipt %v, want one: %v", r.Line, r.Status, rc != nil, wantReceipt[i])
			}
			if rc == nil {
				continue
			}
			if rc.SubjectID != r.SubjectID || rc.NoticeVersion != 1 || len(rc.Decisions) != 1 || rc.Decisions[0].Purpose != "personalisation" {
				t.Errorf("line %d receipt: %+v", r.Line, rc)
			}
			if !svc.VerifyReceipt(rc) {
				t.Errorf("line %d: receipt does not verify", r.Line)
			}
			forged := *rc
			forged.SubjectID = res[3].SubjectID
			if svc.VerifyReceipt(&forged) {
				t.Errorf("line %d: a receipt moved to another customer verifies", r.Line)
			}
		}
		again, err := svc.ImportRows(admin, []string{"account"}, "job-receipts", rows[:1])
		if err != nil {
			t.Fatal(err)
		}
		if again[0].Status != custos.ImportAlready || again[0].ConsentReceipt != nil {
			t.Errorf("line 1 sent again: %s with receipt %v, want already without one", again[0].Status, again[0].ConsentReceipt != nil)
		}

		in, _ := recordRow(1, "13700000021", true)
		res, err = svc.ImportRowsWithRecords(admin, []string{"account"}, "job-no-receipts", []core.ImportInput{in},
			core.ImportRecords{Purposes: importRecordPurposes, ByRow: [][]custos.NewRecord{nil}, NoReceipts: true})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Status != custos.ImportStored || res[0].ConsentReceipt != nil {
			t.Fatalf("NoReceipts: %s with receipt %v, want stored without one", res[0].Status, res[0].ConsentReceipt != nil)
		}
		if err := store.View(t.Context(), func(tx custos.Tx) error {
			cs, err := tx.ListConsents(t.Context(), res[0].SubjectID)
			if err != nil {
				return err
			}
			if len(cs) != 1 || cs[0].Purpose != "personalisation" || !cs[0].Granted() {
				t.Errorf("NoReceipts: consents %+v, want the grant of personalisation stored", cs)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// probeCountStore counts the Update functions run and the import's
// probes for stored lookup keys (Tx.FindLookups) in them.
type probeCountStore struct {
	custos.Store
	runs, probes atomic.Int64
}

func (s *probeCountStore) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	return s.Store.Update(ctx, func(tx custos.Tx) error {
		s.runs.Add(1)
		return fn(probeCountTx{tx, &s.probes})
	})
}

type probeCountTx struct {
	custos.Tx
	n *atomic.Int64
}

func (tx probeCountTx) FindLookups(ctx context.Context, field string, hashes [][]byte) (map[string]custos.SubjectID, error) {
	tx.n.Add(1)
	return tx.Tx.FindLookups(ctx, field, hashes)
}

// AtEnd keeps the store's end-of-transaction audit append.
func (tx probeCountTx) AtEnd(fn func(tx custos.Tx) error) { tx.Tx.(custos.AtEnder).AtEnd(fn) }

// TestImportInsertsFirst: a job's batches insert their lookup keys
// without probing for stored owners first; a batch that finds a key
// taken is rolled back whole and run again probing, and answers the row
// a duplicate of the stored customer (its bad record, never tried, does
// not refuse the batch) while the others are stored once, with one
// audit event each. After such a miss the job probes first for a run of
// batches, longer after each miss, that restarts while they find stored
// keys; then it inserts first again (importProbes). A duplicate inside a
// batch needs no probe.
func TestImportInsertsFirst(t *testing.T) {
	importStores(t, func(t *testing.T, base custos.Store) {
		store := &probeCountStore{Store: base}
		svc, admin, _, signer := newService(t, store)
		publishPersonalisation(t, svc, admin)
		var known []custos.SubjectID
		for _, m := range []string{"13800000001", "13800000002", "13800000003"} {
			s, err := svc.CreateSubject(admin, []string{"account"}, custos.NewSubject{
				Fields: map[string]string{"name": "甲", "mobile": m}, Provenance: prov})
			if err != nil {
				t.Fatal(err)
			}
			known = append(known, s.ID)
		}
		line, fresh, stored := 0, 100, 3
		var want core.ImportStats // what ImportStats must count
		// batch imports one row per mobile ("" a new one) and checks how
		// many runs and probes (unless wantProbes < 0) it took.
		batch := func(wantRuns, wantProbes int64, mobiles ...string) []*custos.ImportResult {
			t.Helper()
			var (
				rows []core.ImportInput
				recs [][]custos.NewRecord
			)
			for _, m := range mobiles {
				line++
				r := []custos.NewRecord{newRecord("order", 1, map[string]any{"order_no": fmt.Sprint("O-", line)})}
				if m == "" {
					fresh++
					m = fmt.Sprintf("13800000%03d", fresh)
				} else if strings.HasPrefix(m, "1380000000") {
					r = []custos.NewRecord{{Type: "order"}} // a stored customer's: refused if ever tried
				}
				in, _ := recordRow(line, m, true)
				rows, recs = append(rows, in), append(recs, r)
			}
			runs, probes := store.runs.Load(), store.probes.Load()
			res, err := svc.ImportRowsWithRecords(admin, []string{"account"}, "job-first", rows,
				core.ImportRecords{Purposes: importRecordPurposes, ByRow: recs})
			if err != nil {
				t.Fatalf("lines %d–%d: %v", rows[0].Line, line, err)
			}
			for _, r := range res {
				if r.Status == custos.ImportStored {
					stored++
				}
			}
			gotRuns, gotProbes := store.runs.Load()-runs, store.probes.Load()-probes
			want.Batches++
			want.Rerun += gotRuns - 1
			if gotProbes > 0 {
				want.Probed++
			}
			if gotRuns != wantRuns || (wantProbes >= 0 && gotProbes != wantProbes) {
				t.Errorf("lines %d–%d: %d runs and %d probes, want %d and %d", rows[0].Line, line, gotRuns, gotProbes, wantRuns, wantProbes)
			}
			return res
		}
		status := func(res []*custos.ImportResult) (out []string) {
			for _, r := range res {
				out = append(out, r.Status)
			}
			return out
		}
		// New customers, one twice: inserted first, no probe.
		res := batch(1, 0, "", "", "13800000101")
		if got := status(res); !slices.Equal(got, []string{custos.ImportStored, custos.ImportStored, custos.ImportDuplicate}) || res[2].SubjectID != res[0].SubjectID {
			t.Fatalf("first batch: %v (duplicate of %s), want stored, stored, duplicate of the first", got, res[2].SubjectID)
		}
		// A stored customer in the middle: the insert falls short, and the
		// batch runs again probing (one probe: one lookup field).
		res = batch(2, 1, "", "13800000001", "")
		if got := status(res); !slices.Equal(got, []string{custos.ImportStored, custos.ImportDuplicate, custos.ImportStored}) || res[1].SubjectID != known[0] {
			t.Fatalf("second batch: %v (duplicate of %s), want stored, duplicate of %s, stored", got, res[1].SubjectID, known[0])
		}
		for _, r := range []*custos.ImportResult{res[0], res[2]} {
			got, err := svc.FindRecords(admin, importRecordPurposes, r.SubjectID, "")
			if err != nil || len(got) != 1 {
				t.Errorf("line %d: %d records, %v; want 1", r.Line, len(got), err)
			}
		}
		// The next batch probes first and runs once.
		if res = batch(1, 1, "", "13800000003"); res[1].Status != custos.ImportDuplicate || res[1].SubjectID != known[2] {
			t.Fatalf("probing batch: %s of %s, want duplicate of %s", res[1].Status, res[1].SubjectID, known[2])
		}
		// Batches of new customers probe for a run, then insert first
		// again; a second miss makes the run longer.
		probing := 0
		for {
			p := store.probes.Load()
			batch(1, -1, "")
			if store.probes.Load() == p {
				break
			}
			if probing++; probing > 20 {
				t.Fatal("still probing after 20 batches of new customers")
			}
		}
		if probing != 1 {
			t.Errorf("%d batches of new customers probed after the first miss, want 1", probing)
		}
		batch(1, 0, "")
		batch(2, 1, "13800000002")
		batch(1, 1, "")
		batch(1, 1, "")
		batch(1, 0, "")

		if got := svc.ImportStats(); got != want || want.Rerun != 2 {
			t.Errorf("import stats %+v, want %+v with 2 reruns", got, want)
		}
		var m strings.Builder
		svc.WriteMetrics(&m)
		if !strings.Contains(m.String(), fmt.Sprintf("\ncustos_import_batches_probed_total %d\n", want.Probed)) {
			t.Errorf("metrics lack %d probed batches:\n%s", want.Probed, m.String())
		}
		if err := base.View(t.Context(), func(tx custos.Tx) error {
			n, err := tx.CountSubjects(t.Context())
			if n != stored {
				t.Errorf("%d subjects stored, want %d", n, stored)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		imports, records := 0, 0
		for _, e := range auditLog(t, base, signer) {
			switch e.Action {
			case custos.AuditSubjectImport:
				imports++
			case custos.AuditRecordCreate:
				records++
			}
		}
		if imports != line || records != stored-3 {
			t.Errorf("%d import and %d record events, want %d and %d (none from the batches rolled back)", imports, records, line, stored-3)
		}
	})
}
