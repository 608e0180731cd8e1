package storetest

import (
	"context"
	"testing"

	"custos"
)

func testMeta(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetMeta(ctx, "kek_version")
		wantCode(t, "GetMeta unset", err, custos.ENOTFOUND)
		return nil
	})
	for _, v := range []string{"1", "2", ""} {
		update(t, s, func(ctx context.Context, tx custos.Tx) error {
			must(t, "SetMeta", tx.SetMeta(ctx, "kek_version", v))
			return tx.SetMeta(ctx, "other", "x")
		})
		view(t, s, func(ctx context.Context, tx custos.Tx) error {
			got, err := tx.GetMeta(ctx, "kek_version")
			must(t, "GetMeta", err)
			if got != v {
				t.Errorf("GetMeta: got %q, want %q", got, v)
			}
			return nil
		})
	}
}
