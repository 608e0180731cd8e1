package sqlutil

import (
	"context"

	"custos"
)

// ListCheckpoints returns every signed checkpoint of the audit chain, in
// seq order.
func (st Stmts) ListCheckpoints(ctx context.Context) ([]*custos.AuditCheckpoint, error) {
	return st.checkpoints(ctx, `ORDER BY seq`)
}

// LastCheckpoint returns the checkpoint of the highest seq, or nil when
// there is none.
func (st Stmts) LastCheckpoint(ctx context.Context) (*custos.AuditCheckpoint, error) {
	cps, err := st.checkpoints(ctx, `ORDER BY seq DESC LIMIT 1`)
	if err != nil || len(cps) == 0 {
		return nil, err
	}
	return cps[0], nil
}

// checkpoints returns the checkpoints that the clause order picks.
func (st Stmts) checkpoints(ctx context.Context, order string) ([]*custos.AuditCheckpoint, error) {
	cps := []*custos.AuditCheckpoint{}
	err := st.Q.Query(ctx, `SELECT seq, hash, time, key_id, signature FROM audit_checkpoints `+order, nil, func(s Scanner) error {
		var (
			c custos.AuditCheckpoint
			t int64
		)
		if err := s.Scan(&c.Seq, &c.Hash, &t, &c.KeyID, &c.Signature); err != nil {
			return err
		}
		c.Time, c.Hash, c.Signature = Time(t), orNil(c.Hash), orNil(c.Signature)
		cps = append(cps, &c)
		return nil
	})
	if err != nil {
		return nil, st.Q.Error(err, "Audit checkpoint")
	}
	return cps, nil
}
