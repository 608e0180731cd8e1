package core_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"custos"
)

// TestFindSubjectsByID: a batch read answers each subject as a read by id
// would, in the order asked, with one audit event per subject (granted,
// or refused with the code its result carries) in one chained append; a
// request the decision refuses audits every subject as refused; a bad id
// list is refused naming the entry and the rule, and reads or audits
// nothing. Both stores.
func TestFindSubjectsByID(t *testing.T) {
	importStores(t, func(t *testing.T, store custos.Store) {
		svc, admin, _, signer := newService(t, store)
		svc.CheckpointEvery = 3 // a checkpoint falls inside the batch's append
		read := []string{"fulfilment"}
		var ids []custos.SubjectID
		for i, mobile := range []string{"13900004001", "13900004002", "13900004003"} {
			s, err := svc.CreateSubject(admin, []string{"account", "fulfilment", "legal-obligation"}, custos.NewSubject{
				Fields: map[string]string{"name": []string{"王批一", "王批二", "王批三"}[i], "mobile": mobile, "address": "上海市浦东新区世纪大道100号"}, Provenance: prov})
			if err != nil {
				t.Fatalf("%v %+v", err, custos.AsError(err).Violations)
			}
			ids = append(ids, s.ID)
		}
		if _, err := svc.EraseSubject(admin, []string{"customer-service"}, ids[1], "test"); err != nil {
			t.Fatal(err)
		}
		unknown := custos.SubjectID(custos.NewID("sub"))
		ask := []custos.SubjectID{ids[2], ids[1], unknown, ids[0]}

		before := len(auditLog(t, store, signer))
		rs, err := svc.FindSubjectsByID(admin, read, ask)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != len(ask) {
			t.Fatalf("%d results for %d ids", len(rs), len(ask))
		}
		for i, r := range rs {
			if r.ID != ask[i] {
				t.Fatalf("result %d is %s, want %s (the order asked)", i, r.ID, ask[i])
			}
			one, oneErr := svc.FindSubjectByID(admin, read, ask[i])
			if custos.ErrorCode(r.Err) != custos.ErrorCode(oneErr) {
				t.Fatalf("result %d: error %v, a read by id says %v", i, r.Err, oneErr)
			}
			if oneErr != nil {
				if r.Subject != nil {
					t.Errorf("result %d carries a subject and the error %v", i, r.Err)
				}
				continue
			}
			if r.Subject == nil || !maps.Equal(r.Subject.Fields, one.Fields) || !maps.Equal(r.Subject.Decisions, one.Decisions) {
				t.Errorf("result %d: %+v, a read by id gives %+v", i, r.Subject, one)
			}
			if len(r.Subject.Fields) == 0 {
				t.Errorf("result %d: no fields", i)
			}
		}
		for _, i := range []int{1, 2} {
			if custos.ErrorCode(rs[i].Err) != custos.ENOTFOUND {
				t.Errorf("result %d: %v, want not found", i, rs[i].Err)
			}
		}

		// The batch's events come first, then the four single reads above.
		log := auditLog(t, store, signer) // verifies the chain and checkpoints
		batch := log[before : before+len(ask)]
		for i, e := range batch {
			wantDecision, wantReason := custos.DecisionAllow, ""
			if rs[i].Err != nil {
				wantDecision, wantReason = custos.DecisionDeny, custos.ENOTFOUND
			}
			if e.Action != custos.AuditSubjectRead || e.SubjectID != ask[i] || e.Decision != wantDecision || e.Reason != wantReason ||
				!slices.Equal(e.Purposes, read) || e.ActorID != "prn_admin" {
				t.Errorf("batch event %d: %+v, want %s of %s, %s %q", i, e, custos.AuditSubjectRead, ask[i], wantDecision, wantReason)
			}
			if (len(e.Fields) > 0) != (rs[i].Err == nil) {
				t.Errorf("batch event %d names fields %v for result error %v", i, e.Fields, rs[i].Err)
			}
		}
		if n := len(log) - before; n != 2*len(ask) {
			t.Errorf("%d events after the batch and four reads, want %d", n, 2*len(ask))
		}

		// Refused as a whole: every subject audited as refused, nothing read.
		before = len(log)
		rs, err = svc.FindSubjectsByID(admin, []string{"no-such-purpose"}, ask[:2])
		if custos.ErrorCode(err) != custos.EFORBIDDEN || rs != nil {
			t.Fatalf("undeclared purpose: %v, %v; want forbidden and nothing", rs, err)
		}
		log = auditLog(t, store, signer)
		if len(log) != before+2 {
			t.Fatalf("refused batch appended %d events, want 2", len(log)-before)
		}
		for i, e := range log[before:] {
			if e.SubjectID != ask[i] || e.Decision != custos.DecisionDeny || e.Reason == "" {
				t.Errorf("refused batch event %d: %+v", i, e)
			}
		}

		// Bad lists: refused naming the entry and the rule, nothing audited.
		many := make([]custos.SubjectID, custos.ReadBatchMax+1)
		for i := range many {
			many[i] = custos.SubjectID(custos.NewID("sub"))
		}
		for _, c := range []struct {
			name        string
			ids         []custos.SubjectID
			field, rule string
		}{
			{"empty", nil, "ids", "required"},
			{"too many", many, "ids", "max_items"},
			{"duplicate", []custos.SubjectID{ids[0], ids[2], ids[0]}, "ids[2]", "duplicate"},
			{"malformed", []custos.SubjectID{ids[0], "13900004001"}, "ids[1]", "format"},
		} {
			before = len(log)
			rs, err := svc.FindSubjectsByID(admin, read, c.ids)
			ce := custos.AsError(err)
			if ce == nil || ce.Code != custos.EINVALID || len(ce.Violations) != 1 || ce.Violations[0].Field != c.field || ce.Violations[0].Rule != c.rule || rs != nil {
				t.Errorf("%s: %v, %+v; want invalid %s/%s", c.name, rs, err, c.field, c.rule)
			}
			if strings.Contains(custos.ErrorMessage(err)+fmt.Sprint(ce.Violations), "13900004001") {
				t.Errorf("%s: the error repeats the value: %v", c.name, ce)
			}
			if log = auditLog(t, store, signer); len(log) != before {
				t.Errorf("%s: %d events appended, want none", c.name, len(log)-before)
			}
		}
		if _, err := svc.FindSubjectsByID(admin, read, many[:custos.ReadBatchMax]); err != nil {
			t.Errorf("%d ids (the most allowed): %v", custos.ReadBatchMax, err)
		}
	})
}
