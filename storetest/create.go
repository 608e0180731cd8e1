package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"

	"custos"
)

// BenchSealed is a customer's sealed fields as the store benchmarks write
// them: eight fields of 60 bytes.
func BenchSealed() map[string][]byte {
	sealed := map[string][]byte{}
	for _, f := range []string{"name", "mobile", "email", "id_number", "address", "birth_date", "member_no", "city"} {
		sealed[f] = bytes.Repeat([]byte{1}, 60)
	}
	return sealed
}

// CreateCustomer writes in tx what a customer create asks of a store, for
// the store benchmarks (sqlite BenchmarkInsertSubject and
// BenchmarkCreateGroup, the postgres BenchmarkInsertSubject*): the data
// key, the subject row, its blind-index keys in one statement and an audit
// event chained to the head. With atEnd the audit append is left for the
// end of the transaction (custos.AtEnder), as core does it.
func CreateCustomer(ctx context.Context, tx custos.Tx, id custos.SubjectID, sealed map[string][]byte, lookups []custos.Lookup, atEnd bool) error {
	now := tx.Now()
	if err := tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1,
		Wrapped: bytes.Repeat([]byte{2}, 60), CreatedAt: now}); err != nil {
		return err
	}
	if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: sealed, CreatedAt: now, UpdatedAt: now}); err != nil {
		return err
	}
	if err := tx.InsertLookups(ctx, lookups); err != nil {
		return err
	}
	fields := make([]string, len(lookups))
	for i, l := range lookups {
		fields[i] = l.Field
	}
	appendEvent := func(tx custos.Tx) error {
		seq, head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		h := sha256.Sum256(append(head, byte(seq)))
		return tx.InsertAuditEvent(ctx, &custos.AuditEvent{Seq: seq + 1, Time: now, ActorID: "prn_bench",
			Action: custos.AuditSubjectCreate, SubjectID: id, Fields: fields,
			Purposes: []string{"account"}, Decision: custos.DecisionAllow, PrevHash: head, Hash: h[:]})
	}
	if atEnd {
		tx.(custos.AtEnder).AtEnd(appendEvent)
		return nil
	}
	return appendEvent(tx)
}
