package sqlite

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

// InsertNotice stores a published notice; ECONFLICT if the version exists.
func (tx *Tx) InsertNotice(ctx context.Context, n *custos.Notice) error {
	args, err := sqlutil.NoticeArgs(n)
	if err != nil {
		return internal("notice", err)
	}
	_, err = tx.exec(ctx, (sqlutil.InsertNoticeSQL), args...)
	return formatError(err, "Notice")
}

// GetNotice returns the notice with version, or ENOTFOUND.
func (tx *Tx) GetNotice(ctx context.Context, version int) (*custos.Notice, error) {
	var n *custos.Notice
	err := tx.queryRow(ctx, (sqlutil.GetNoticeSQL), []any{version}, func(s scanner) (err error) {
		n, err = sqlutil.ScanNotice(s)
		return err
	})
	if err != nil {
		return nil, formatError(err, "Notice")
	}
	return n, nil
}

// ListNotices returns every notice, oldest first.
func (tx *Tx) ListNotices(ctx context.Context) ([]*custos.Notice, error) {
	ns := []*custos.Notice{}
	err := tx.query(ctx, sqlutil.ListNoticesSQL, nil, func(s scanner) error {
		n, err := sqlutil.ScanNotice(s)
		if err == nil {
			ns = append(ns, n)
		}
		return err
	})
	if err != nil {
		return nil, formatError(err, "Notice")
	}
	return ns, nil
}

// InsertConsent appends a consent decision and sets c.Seq.
func (tx *Tx) InsertConsent(ctx context.Context, c *custos.StoredConsent) error {
	err := tx.scanRow(ctx, (sqlutil.InsertConsentSQL), sqlutil.ConsentArgs(c), &c.Seq)
	return formatError(err, "Consent")
}

// ListConsents returns a subject's consent history in recorded order.
func (tx *Tx) ListConsents(ctx context.Context, id custos.SubjectID) ([]*custos.StoredConsent, error) {
	cs := []*custos.StoredConsent{}
	err := tx.query(ctx, (sqlutil.ListConsentsSQL), []any{string(id)}, func(s scanner) error {
		c, err := sqlutil.ScanConsent(s)
		if err == nil {
			cs = append(cs, c)
		}
		return err
	})
	if err != nil {
		return nil, formatError(err, "Consent")
	}
	return cs, nil
}

// DeleteConsents removes a subject's consent history.
func (tx *Tx) DeleteConsents(ctx context.Context, id custos.SubjectID) (int, error) {
	n, err := tx.affected(ctx, (sqlutil.DeleteConsentSQL), string(id))
	return int(n), formatError(err, "Consent")
}
