package storetest

import (
	"context"
	"testing"

	"custos"
)

func testImportRow(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	rows := []*custos.ImportRow{
		{Job: "job1", Line: 1, Status: custos.ImportStored, SubjectID: "sub_a"},
		{Job: "job1", Line: 2, Status: custos.ImportRejected, Message: "The subject was not stored: some fields were refused.",
			Violations: []custos.Violation{
				{Field: "mobile", Rule: "mobile_format", Detail: "must be an 11-digit <mainland> mobile number, optionally with +86 & \"quotes\""},
				{Field: "gender", Rule: "enum"},
			}},
		{Job: "job1", Line: 3, Status: custos.ImportRejected, Message: "The line could not be parsed.",
			Violations: []custos.Violation{{Field: "line", Rule: "column_count"}}},
		{Job: "job2", Line: 1, Status: custos.ImportDuplicate, SubjectID: "sub_a", Message: "A subject with the same mobile already exists.",
			Violations: []custos.Violation{{Field: "mobile", Rule: "duplicate"}}},
		{Job: "job2", Line: 2, Status: custos.ImportRejected, Violations: []custos.Violation{}},
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetImportRow(ctx, "job1", 1)
		wantCode(t, "GetImportRow before insert", err, custos.ENOTFOUND)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, r := range rows {
			must(t, "InsertImportRow", tx.InsertImportRow(ctx, r))
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, want := range rows {
			got, err := tx.GetImportRow(ctx, want.Job, want.Line)
			must(t, "GetImportRow", err)
			diff(t, "import row", want, got)
		}
		_, err := tx.GetImportRow(ctx, "job2", 3)
		wantCode(t, "GetImportRow other line", err, custos.ENOTFOUND)
		_, err = tx.GetImportRow(ctx, "job3", 1)
		wantCode(t, "GetImportRow other job", err, custos.ENOTFOUND)
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.InsertImportRow(t.Context(), &custos.ImportRow{Job: "job1", Line: 1, Status: custos.ImportStored})
	})
	wantCode(t, "InsertImportRow duplicate", err, custos.ECONFLICT)
}
