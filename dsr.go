package custos

import "time"

// Rights request types (R1–R7; PIPL Art. 44–50).
const (
	RightsAccess     = "access"        // what is held, why, from where, shared with whom, kept how long
	RightsCopy       = "copy"          // a portable export (zip of JSON and CSV)
	RightsCorrect    = "correct"       // change held fields
	RightsSupplement = "supplement"    // add fields not held yet
	RightsDelete     = "delete"        // erase; data under a legal minimum retention is restricted instead
	RightsWithdraw   = "withdraw"      // withdraw consent to purposes
	RightsRestrict   = "restrict"      // stop processing, keep stored
	RightsClose      = "close_account" // close the account: delete and tell every recipient
)

// RightsTypes lists every request type.
var RightsTypes = []string{RightsAccess, RightsCopy, RightsCorrect, RightsSupplement, RightsDelete, RightsWithdraw, RightsRestrict, RightsClose}

// RelativeTypes are the requests a deceased customer's close relatives may
// file (PIPL Art. 49), always for staff review.
var RelativeTypes = []string{RightsAccess, RightsCopy, RightsCorrect, RightsDelete}

// Rights request statuses.
const (
	RightsReceived   = "received"    // filed, identity not verified yet
	RightsReview     = "review"      // needs a person: relatives, restriction …
	RightsInProgress = "in_progress" // being fulfilled (e.g. waiting for recipients)
	RightsCompleted  = "completed"
	RightsRefused    = "refused" // with a stated reason (PIPL Art. 50)
)

// Identity verification methods.
const (
	VerifyOTP   = "otp"   // a one-time code sent to the mobile or e-mail on file
	VerifyStaff = "staff" // checked by a staff member, who records how
)

// RightsRequest is one customer request and its evidence. Everything here is
// ids, names, times and counts; the request's personal details (corrected
// values, a relative's identity and proof) are sealed under the customer's
// data key and returned only to staff who handle requests.
type RightsRequest struct {
	ID          string             `json:"id"`
	SubjectID   SubjectID          `json:"subject_id"`
	Type        string             `json:"type"`
	Status      string             `json:"status"`
	Channel     string             `json:"channel"` // portal, app, phone, counter, email
	FiledBy     PrincipalID        `json:"filed_by,omitempty"`
	FiledAt     time.Time          `json:"filed_at"`
	Deadline    time.Time          `json:"deadline"` // end of the last working day allowed
	Verified    string             `json:"verified,omitempty"`
	VerifiedAt  time.Time          `json:"verified_at,omitzero"`
	ByRelative  bool               `json:"by_relative,omitempty"`
	Purposes    []string           `json:"purposes,omitempty"` // withdraw, restrict
	Fields      []string           `json:"fields,omitempty"`   // correct, supplement: names only
	CompletedAt time.Time          `json:"completed_at,omitzero"`
	Refusal     string             `json:"refusal,omitempty"` // the reason stated to the customer
	Retained    []Retained         `json:"retained,omitempty"`
	EventID     string             `json:"event_id,omitempty"` // outbox event telling recipients
	Steps       []DSRStep          `json:"steps"`
	Deliveries  []*WebhookDelivery `json:"deliveries,omitempty"` // per recipient, for erasure and closure
	UpdatedAt   time.Time          `json:"updated_at"`
	// Alerted records which deadline alerts were raised ("near",
	// "overdue"), so that each is raised once.
	Alerted []string    `json:"alerted,omitempty"`
	Details *DSRDetails `json:"details,omitempty"` // unsealed for staff only
}

// DSRStep is one entry of a request's timeline: what happened, when, by whom.
type DSRStep struct {
	At    time.Time   `json:"at"`
	Actor PrincipalID `json:"actor,omitempty"`
	Step  string      `json:"step"`
	Note  string      `json:"note,omitempty"` // no personal data
}

// Retained is data a deletion could not remove yet because a law requires
// keeping it: it is restricted — stored, locked, excluded from every use —
// and deleted when Until passes (PIPL Art. 47).
type Retained struct {
	Category string    `json:"category"`
	Count    int       `json:"count"`
	Reason   string    `json:"reason"`
	Until    time.Time `json:"until"`
}

// DSRDetails are a request's personal details, sealed at rest.
type DSRDetails struct {
	Values   map[string]string `json:"values,omitempty"`   // correct, supplement
	Relative *Relative         `json:"relative,omitempty"` // a deceased customer's relative
	Note     string            `json:"note,omitempty"`     // the customer's own words
	Evidence string            `json:"evidence,omitempty"` // how staff verified identity
}

// Relative is a deceased customer's close relative filing a request.
type Relative struct {
	Name     string `json:"name"`
	Relation string `json:"relation"`
	Proof    string `json:"proof"` // death certificate and kinship proof, as described
}

// NewRightsRequest is what a customer (through the portal) or staff (on the
// customer's behalf) files.
type NewRightsRequest struct {
	SubjectID SubjectID         `json:"subject_id"`
	Type      string            `json:"type"`
	Channel   string            `json:"channel"`
	Purposes  []string          `json:"purposes,omitempty"`
	Values    map[string]string `json:"values,omitempty"`
	Relative  *Relative         `json:"relative,omitempty"`
	Note      string            `json:"note,omitempty"`
	// Verified says how identity was checked; staff give "staff" with
	// Evidence. The portal sets "otp" itself after a code was verified.
	Verified string `json:"verified,omitempty"`
	Evidence string `json:"evidence,omitempty"`
}

// RightsDecision is a staff decision on a request under review.
type RightsDecision struct {
	Approve bool   `json:"approve"`
	Reason  string `json:"reason"` // required when refusing
}

// RightsFilter selects requests for the staff queue.
type RightsFilter struct {
	Status    string    // "" for all open (received, review, in_progress)
	SubjectID SubjectID // "" for all
	DueBefore time.Time // zero for any deadline
	Limit     int
}

// AccessReport answers an access request: what is held, why, from where,
// shared with whom, kept how long. Values are shown masked, as the catalog
// says for customer-facing display; the export (copy) holds them in full.
type AccessReport struct {
	SubjectID   SubjectID         `json:"subject_id"`
	GeneratedAt time.Time         `json:"generated_at"`
	Fields      []AccessField     `json:"fields"`
	Records     map[string]int    `json:"records"` // record type → count
	Consents    []*Consent        `json:"consents"`
	Recipients  []string          `json:"recipients"` // who receives events about the customer
	Notice      *Notice           `json:"notice,omitempty"`
	Retention   map[string]string `json:"retention"` // purpose → how long, from the notice
}

// AccessField is one held field in an access report.
type AccessField struct {
	Name     string     `json:"name"`
	Category string     `json:"category"`
	Masked   string     `json:"masked"`
	Purposes []string   `json:"purposes"` // purposes that use it
	Source   Provenance `json:"source"`
}
