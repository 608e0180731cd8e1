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

// ShredLedgerSyncer is implemented by a ShredLedger that can write an
// entry at once and put it on disk later (package ledger's File). With a
// store whose transactions take work at their end (custos.AtEnder, both
// stores), an erasure writes its entry so and syncs the ledger at its
// transaction's end, before the commit: the erasures sharing one commit
// group, or one retention batch, sync it once instead of once each
// (BENCHMARKS.md, thirty-seventh session).
type ShredLedgerSyncer interface {
	// AppendEraseUnsynced writes e and returns the entry's seq; the entry
	// is durable only once Sync has returned nil.
	AppendEraseUnsynced(e custos.ShredEntry) (int64, error)
	// Sync puts every entry written so far on disk; nil when there is
	// nothing to write.
	Sync() error
}

// shredAttempts are the ledger entries written by each attempt of one
// transaction (PostgreSQL re-runs a transaction that lost a deadlock).
type shredAttempts struct{ attempts [][]int64 }

// begin starts an attempt; call it first thing in the transaction.
func (a *shredAttempts) begin() { a.attempts = append(a.attempts, nil) }

// recordShred appends e to the ledger, if there is one, as part of the
// current attempt of tx: on disk before tx commits (S7), by a sync at tx's
// end where the ledger and tx allow it (ShredLedgerSyncer), else now. If
// that sync fails, tx fails and commits nothing, and its caller's
// settleShred voids the entry.
func (s *Service) recordShred(tx custos.Tx, e custos.ShredEntry, a *shredAttempts) error {
	if s.Ledger == nil {
		return nil
	}
	if len(a.attempts) == 0 {
		a.begin()
	}
	var seq int64
	var err error
	ls, deferrable := s.Ledger.(ShredLedgerSyncer)
	at, ending := tx.(custos.AtEnder)
	if deferrable && ending {
		if seq, err = ls.AppendEraseUnsynced(e); err == nil {
			at.AtEnd(func(custos.Tx) error { return ls.Sync() })
		}
	} else {
		seq, err = s.Ledger.AppendErase(e)
	}
	if err != nil {
		return err
	}
	last := len(a.attempts) - 1
	a.attempts[last] = append(a.attempts[last], seq)
	return nil
}

// settleShred voids the ledger entries of attempts that did not commit:
// all of them when err is set, else those of every attempt but the last.
// A void that cannot be written leaves an erase entry that a restore
// re-applies: the erasure was asked for and authorised, so erring that way
// keeps the customer's request.
func (s *Service) settleShred(a *shredAttempts, err error) {
	if s.Ledger == nil || len(a.attempts) == 0 {
		return
	}
	void := a.attempts
	if err == nil {
		void = void[:len(void)-1]
	}
	for _, seqs := range void {
		for _, seq := range seqs {
			if verr := s.Ledger.AppendVoid(seq); verr != nil {
				s.logger.Warn("shred ledger: could not void an entry of an erasure that did not commit", "seq", seq, "err", verr)
			}
		}
	}
}
