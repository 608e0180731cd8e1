package core

import (
	"custos"
)

// ShredLedger records erasures outside the store, so that they survive
// losing the database and its backups (package ledger). EraseSubject
// appends to it inside the erasure's transaction, before the commit: if
// the append fails the erasure fails, and if the transaction then does not
// commit the entry is voided.
type ShredLedger interface {
	// AppendErase records e durably and returns the entry's seq.
	AppendErase(e custos.ShredEntry) (int64, error)
	// AppendVoid records that the entry seq belongs to a transaction
	// that did not commit.
	AppendVoid(seq int64) error
}

// recordShred appends e to the ledger, if there is one, remembering its
// seq in appended.
func (s *Service) recordShred(e custos.ShredEntry, appended *[]int64) error {
	if s.Ledger == nil {
		return nil
	}
	seq, err := s.Ledger.AppendErase(e)
	if err != nil {
		return err
	}
	*appended = append(*appended, seq)
	return nil
}

// settleShred voids the ledger entries of attempts that did not commit:
// all of them when err is set, else all but the last (PostgreSQL re-runs a
// transaction that lost a deadlock). A void that cannot be written leaves
// an erase entry that a restore re-applies: the erasure was asked for and
// authorised, so erring that way keeps the customer's request.
func (s *Service) settleShred(appended []int64, err error) {
	if err == nil && len(appended) > 0 {
		appended = appended[:len(appended)-1]
	}
	for _, seq := range appended {
		if verr := s.Ledger.AppendVoid(seq); verr != nil {
			s.logger.Warn("shred ledger: could not void an entry of an erasure that did not commit", "seq", seq, "err", verr)
		}
	}
}
