package custos

import "time"

// Notice is one published version of the privacy notice (C3). It is
// immutable once published: Hash is the SHA-256 of its canonical content,
// and consent always points at the version the customer saw.
type Notice struct {
	Version     int           `json:"version"`
	Hash        string        `json:"hash"` // hex SHA-256 of the canonical JSON of Content
	PublishedAt time.Time     `json:"published_at"`
	PublishedBy PrincipalID   `json:"published_by,omitempty"`
	Content     NoticeContent `json:"content"`
}

// NoticeContent is what a notice says (PIPL Art. 17, NDSMR Art. 21; RULES.md
// "Notice"). Purposes and their fields are checked against the catalog when
// the notice is published; the prose is given per language, zh-CN and en
// both required.
type NoticeContent struct {
	Controller   string                `json:"controller"`
	Contact      string                `json:"contact"`
	Purposes     []NoticePurpose       `json:"purposes"`
	ThirdParties []NoticeThirdParty    `json:"third_parties,omitempty"`
	Text         map[string]NoticeText `json:"text"` // language tag → prose
}

// NoticePurpose is one purpose as the notice presents it. For a purpose
// whose legal basis is consent, Fields and Records are exactly what the
// customer's consent to it covers.
type NoticePurpose struct {
	Name       string   `json:"name"`
	LegalBasis string   `json:"legal_basis"` // copied from the catalog, for the reader
	Fields     []string `json:"fields"`
	Records    []string `json:"records,omitempty"`
	Retention  string   `json:"retention"`
	// Necessity and Impact explain each sensitive category the purpose
	// uses (PIPL Art. 30); required when it uses any.
	Necessity string `json:"necessity,omitempty"`
	Impact    string `json:"impact,omitempty"`
}

// NoticeThirdParty is a recipient the notice discloses (U5); sharing with it
// needs the customer's separate consent.
type NoticeThirdParty struct {
	Name    string   `json:"name"`
	Purpose string   `json:"purpose"`
	Fields  []string `json:"fields"`
}

// NoticeText is a notice's prose in one language.
type NoticeText struct {
	Title  string `json:"title"`
	Body   string `json:"body"`   // plain language: what, why, how long, sharing
	Rights string `json:"rights"` // the rights and how to use them
}

// NoticeLanguages are the languages every notice must carry.
var NoticeLanguages = []string{"zh-CN", "en"}

// Consent scopes besides the purpose itself: a sensitive category used by
// the purpose, or a third party, each needs its own decision (C4).
const (
	ScopePurpose    = ""
	ScopeSensitive  = "sensitive:"   // + category
	ScopeThirdParty = "third_party:" // + recipient name
)

// Consent actions.
const (
	ConsentGranted   = "granted"
	ConsentRefused   = "refused"
	ConsentWithdrawn = "withdrawn"
)

// Consent is one recorded decision of a customer (or guardian): subject ×
// purpose × scope × notice version.
type Consent struct {
	ID            string      `json:"id"`
	SubjectID     SubjectID   `json:"subject_id"`
	Purpose       string      `json:"purpose"`
	Scope         string      `json:"scope,omitempty"` // "", "sensitive:<category>", "third_party:<name>"
	Action        string      `json:"action"`          // granted, refused, withdrawn
	NoticeVersion int         `json:"notice_version"`
	At            time.Time   `json:"at"`
	Channel       string      `json:"channel"`
	InitiatedBy   string      `json:"initiated_by"` // customer or company
	ByGuardian    bool        `json:"by_guardian,omitempty"`
	ActorID       PrincipalID `json:"actor_id,omitempty"`
	// Evidence and the guardian's details are personal data: stored sealed
	// under the subject's data key, returned only to the consent API.
	Evidence string    `json:"evidence,omitempty"`
	Guardian *Guardian `json:"guardian,omitempty"`
}

// Guardian is who consented for a customer under 14 (PIPL Art. 31).
type Guardian struct {
	Name     string `json:"name"`
	Relation string `json:"relation"` // parent, guardian …
	Evidence string `json:"evidence"` // how the guardianship was checked
}

// ConsentDecision is one explicit answer in a consent capture. Granted is a
// pointer so that a missing answer is told apart from a "no": consent is
// never assumed (no pre-ticked boxes).
type ConsentDecision struct {
	Purpose    string `json:"purpose"`
	Category   string `json:"category,omitempty"`    // a sensitive category the purpose uses
	ThirdParty string `json:"third_party,omitempty"` // a recipient the notice names
	Granted    *bool  `json:"granted"`
}

// Consent capture kinds: a form answers every optional purpose of the notice
// (the first time a customer sees a notice version); a change answers only
// what the customer chose to change.
const (
	CaptureForm   = "form"
	CaptureChange = "change"
)

// ConsentCapture is one submission of consent decisions.
type ConsentCapture struct {
	NoticeVersion int               `json:"notice_version"`
	Kind          string            `json:"kind"` // form (default) or change
	Channel       string            `json:"channel"`
	InitiatedBy   string            `json:"initiated_by"` // customer (default) or company
	Evidence      string            `json:"evidence"`
	Decisions     []ConsentDecision `json:"decisions"`
	Guardian      *Guardian         `json:"guardian,omitempty"`
	// All is refused when true: bundled consent is not consent (C4). It
	// exists so that such a request gets a clear refusal, not silence.
	All bool `json:"all,omitempty"`
}

// ConsentChannels are the channels a consent may be captured through.
var ConsentChannels = []string{"app", "web", "mini_program", "pos", "phone", "paper", "portal"}

// ConsentReceipt is the signed evidence of one capture that the customer
// can keep; custos verifies it with the audit signing key. It holds ids,
// purposes and times only — no personal data.
type ConsentReceipt struct {
	ReceiptID     string         `json:"receipt_id"`
	SubjectID     SubjectID      `json:"subject_id"`
	NoticeVersion int            `json:"notice_version"`
	NoticeHash    string         `json:"notice_hash"`
	At            time.Time      `json:"at"`
	Channel       string         `json:"channel"`
	ByGuardian    bool           `json:"by_guardian,omitempty"`
	Decisions     []ReceiptEntry `json:"decisions"`
	KeyID         string         `json:"key_id"`
	Signature     []byte         `json:"signature"`
}

// ReceiptEntry is one decision as a receipt states it.
type ReceiptEntry struct {
	Purpose string `json:"purpose"`
	Scope   string `json:"scope,omitempty"`
	Action  string `json:"action"`
}

// ConsentState is a customer's consent as it stands: the latest decision per
// purpose and scope, plus the whole history, newest last.
type ConsentState struct {
	SubjectID     SubjectID  `json:"subject_id"`
	Minor         bool       `json:"minor"` // under 14 by birth date or ID number
	CurrentNotice int        `json:"current_notice"`
	Current       []*Consent `json:"current"`
	History       []*Consent `json:"history"`
	// Ask lists the optional purposes the company may ask about now: never
	// decided, decided under an older notice that lacked something the
	// current one uses, or refused longer ago than the re-ask period.
	Ask []string `json:"ask"`
}
