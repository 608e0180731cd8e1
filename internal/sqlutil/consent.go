package sqlutil

import (
	"encoding/json"
	"strconv"
	"strings"

	"custos"
)

// Dollar rewrites ? placeholders as $1, $2 … so that SQLite and PostgreSQL
// adapters can share one query text (none of ours has a literal ?).
func Dollar(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Notice and consent statements, shared by both stores (placeholders in
// SQLite form; PostgreSQL passes them through Dollar).
const (
	InsertNoticeSQL = `INSERT INTO notices (version, hash, content, published_at, published_by) VALUES (?, ?, ?, ?, ?)`
	noticeColumns   = `version, hash, content, published_at, published_by`
	GetNoticeSQL    = `SELECT ` + noticeColumns + ` FROM notices WHERE version = ?`
	ListNoticesSQL  = `SELECT ` + noticeColumns + ` FROM notices ORDER BY version`

	consentColumns   = `id, subject_id, purpose, scope, action, notice_version, at, channel, initiated_by, by_guardian, actor_id, sealed`
	InsertConsentSQL = `INSERT INTO consents (` + consentColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`
	ListConsentsSQL  = `SELECT seq, ` + consentColumns + ` FROM consents WHERE subject_id = ? ORDER BY seq`
	DeleteConsentSQL = `DELETE FROM consents WHERE subject_id = ?`
)

// NoticeArgs are the InsertNoticeSQL arguments for n.
func NoticeArgs(n *custos.Notice) ([]any, error) {
	content, err := json.Marshal(n.Content)
	if err != nil {
		return nil, err
	}
	return []any{n.Version, n.Hash, string(content), Micros(n.PublishedAt), string(n.PublishedBy)}, nil
}

// ScanNotice reads one notice row.
func ScanNotice(s Scanner) (*custos.Notice, error) {
	var (
		n       custos.Notice
		content string
		at      int64
		by      string
	)
	if err := s.Scan(&n.Version, &n.Hash, &content, &at, &by); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(content), &n.Content); err != nil {
		return nil, err
	}
	n.PublishedAt, n.PublishedBy = Time(at), custos.PrincipalID(by)
	return &n, nil
}

// ConsentArgs are the InsertConsentSQL arguments for c.
func ConsentArgs(c *custos.StoredConsent) []any {
	return appendConsentArgs(make([]any, 0, 12), c)
}

// appendConsentArgs appends c's consentColumns values to args.
func appendConsentArgs(args []any, c *custos.StoredConsent) []any {
	g := 0
	if c.ByGuardian {
		g = 1
	}
	return append(args, c.ID, string(c.SubjectID), c.Purpose, c.Scope, c.Action, c.NoticeVersion, Micros(c.At),
		c.Channel, c.InitiatedBy, g, string(c.ActorID), c.Sealed)
}

// ScanConsent reads one ListConsentsSQL row.
func ScanConsent(s Scanner) (*custos.StoredConsent, error) {
	var (
		c          custos.StoredConsent
		sub, actor string
		at         int64
		g          int
	)
	if err := s.Scan(&c.Seq, &c.ID, &sub, &c.Purpose, &c.Scope, &c.Action, &c.NoticeVersion, &at,
		&c.Channel, &c.InitiatedBy, &g, &actor, &c.Sealed); err != nil {
		return nil, err
	}
	c.SubjectID, c.At, c.ByGuardian, c.ActorID = custos.SubjectID(sub), Time(at), g != 0, custos.PrincipalID(actor)
	return &c, nil
}
