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
		{Job: "job1", Line: 2, Status: custos.ImportRejected},
		{Job: "job2", Line: 1, Status: custos.ImportDuplicate, SubjectID: "sub_a"},
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
		_, err := tx.GetImportRow(ctx, "job2", 2)
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
