package core

import (
	"context"
	"fmt"

	"custos"
	"custos/keys"
)

// RewrapBatch is how many data keys one rotation transaction re-wraps.
const RewrapBatch = 500

// Rewrap re-wraps every data key under the current master key of ring,
// without touching any sealed data (DESIGN.md: KEK rotation re-wraps DEKs).
// It works in batches, so an interrupted run can simply be started again;
// progress is called after each batch. Returns the number re-wrapped.
func (s *Service) Rewrap(ctx context.Context, ring *keys.Keyring, progress func(done int)) (int, error) {
	s.SetKeyring(ring)
	cur := ring.CurrentVersion()
	var after custos.SubjectID
	done := 0
	for {
		var batch []*custos.DataKey
		rewrapped := 0 // set by fn, which may run again (custos.Store)
		err := s.store.Update(ctx, func(tx custos.Tx) error {
			var err error
			if batch, err = tx.ListDataKeys(ctx, after, RewrapBatch); err != nil {
				return err
			}
			n := 0
			for _, dk := range batch {
				if dk.KEKVersion == cur {
					continue
				}
				dek, err := ring.Unwrap(dk.KEKVersion, dk.Wrapped)
				if err != nil {
					return fmt.Errorf("rewrap %s: %w", dk.SubjectID, err)
				}
				if dk.KEKVersion, dk.Wrapped, err = ring.Wrap(dek); err != nil {
					return err
				}
				if err := tx.UpdateDataKey(ctx, dk); err != nil {
					return err
				}
				n++
			}
			rewrapped = n
			if n == 0 && len(batch) < RewrapBatch {
				return nil
			}
			return s.appendAudit(ctx, tx, &custos.AuditEvent{ActorID: "system", Action: custos.AuditKeysRotate, Decision: custos.DecisionAllow,
				Reason: fmt.Sprintf("rewrapped %d data keys to master key v%d", n, cur)})
		})
		if err != nil {
			return done, err
		}
		done += rewrapped
		if progress != nil {
			progress(done)
		}
		if len(batch) < RewrapBatch {
			return done, nil
		}
		after = batch[len(batch)-1].SubjectID
	}
}

// KeyUsage counts data keys per master key version.
func (s *Service) KeyUsage(ctx context.Context) (map[int]int, error) {
	var out map[int]int
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.CountDataKeysByKEK(ctx)
		return err
	})
	return out, err
}

// RecordRetire audits the retirement of a master key version.
func (s *Service) RecordRetire(ctx context.Context, version int) error {
	return s.store.Update(ctx, func(tx custos.Tx) error {
		return s.appendAudit(ctx, tx, &custos.AuditEvent{ActorID: "system", Action: custos.AuditKeysRetire, Decision: custos.DecisionAllow,
			Reason: fmt.Sprintf("retired master key v%d", version)})
	})
}
