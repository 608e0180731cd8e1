package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

func testPrincipal(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	ps := []*custos.Principal{
		{ID: "prn_b", Name: "Ops service", Kind: custos.KindService, Roles: []string{"ops", "auditor"}, CreatedAt: at(0)},
		{ID: "prn_a", Name: "Ana", Kind: custos.KindStaff, Roles: []string{"support"}, Blocked: true, CreatedAt: at(time.Second)},
		{ID: "prn_c", Name: "Partner", Kind: custos.KindPartner, Roles: []string{}, CreatedAt: at(2 * time.Second)},
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListPrincipals(ctx)
		must(t, "ListPrincipals empty", err)
		diff(t, "principals", []*custos.Principal(nil), got)
		_, err = tx.GetPrincipal(ctx, "prn_a")
		wantCode(t, "GetPrincipal missing", err, custos.ENOTFOUND)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, p := range ps {
			must(t, "InsertPrincipal", tx.InsertPrincipal(ctx, p))
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, want := range ps {
			got, err := tx.GetPrincipal(ctx, want.ID)
			must(t, "GetPrincipal", err)
			diff(t, "principal", want, got)
		}
		got, err := tx.ListPrincipals(ctx)
		must(t, "ListPrincipals", err)
		diff(t, "principals oldest first", ps, got)
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertPrincipal(t.Context(), ps[0]) })
	wantCode(t, "InsertPrincipal duplicate", err, custos.ECONFLICT)
}

func testAPIKey(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	p := &custos.Principal{ID: "prn_a", Name: "Ana", Kind: custos.KindStaff, Roles: []string{"support"}, CreatedAt: at(0)}
	k1 := &custos.APIKey{ID: "key_1", PrincipalID: "prn_a", Hash: []byte("hash-1-32-bytes-long-----------!"),
		Token: "secret-token", CreatedAt: at(time.Second)}
	k2 := &custos.APIKey{ID: "key_2", PrincipalID: "prn_a", Hash: []byte("hash-2-32-bytes-long-----------!"), CreatedAt: at(0)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertPrincipal", tx.InsertPrincipal(ctx, p))
		must(t, "InsertAPIKey 1", tx.InsertAPIKey(ctx, k1))
		return tx.InsertAPIKey(ctx, k2)
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.FindAPIKey(ctx, k1.Hash)
		must(t, "FindAPIKey", err)
		// The token is never stored.
		diff(t, "api key", &custos.APIKey{ID: k1.ID, PrincipalID: k1.PrincipalID, Hash: k1.Hash, CreatedAt: k1.CreatedAt}, got)
		got, err = tx.FindAPIKey(ctx, k2.Hash)
		must(t, "FindAPIKey 2", err)
		diff(t, "api key 2", k2, got)
		_, err = tx.FindAPIKey(ctx, []byte("unknown"))
		wantCode(t, "FindAPIKey unknown", err, custos.ENOTFOUND)
		return nil
	})

	tests := []struct {
		name string
		key  *custos.APIKey
	}{
		{name: "duplicate id", key: &custos.APIKey{ID: "key_1", PrincipalID: "prn_a", Hash: []byte("other"), CreatedAt: at(0)}},
		{name: "duplicate hash", key: &custos.APIKey{ID: "key_3", PrincipalID: "prn_a", Hash: k1.Hash, CreatedAt: at(0)}},
	}
	for _, tt := range tests {
		err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertAPIKey(t.Context(), tt.key) })
		wantCode(t, tt.name, err, custos.ECONFLICT)
	}
}
