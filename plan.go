package custos

import (
	"context"
	"time"
)

// PlanID identifies a collection plan ("pln_…").
type PlanID string

// GrantID identifies a data-use request and, once approved, its grant ("grt_…").
type GrantID string

// Actions for collection plans and data-use requests (catalog roles list them).
const (
	ActPlanFile    = "plan.file"    // file a collection plan
	ActPlanApprove = "plan.approve" // approve or reject a plan (data management committee)
	ActUseApply    = "use.apply"    // apply for a data use
	ActUseApprove  = "use.approve"  // approve or reject a data-use request
)

// Audit actions for plans, grants and principal status.
const (
	AuditPlanFile        = "plan.file"
	AuditPlanApprove     = "plan.approve"
	AuditPlanReject      = "plan.reject"
	AuditPlanList        = "plan.list"
	AuditGrantList       = "grant.list"
	AuditGrantApply      = "grant.apply"
	AuditGrantApprove    = "grant.approve"
	AuditGrantReject     = "grant.reject"
	AuditGrantExpired    = "grant.expired"
	AuditPrincipalBlock  = "principal.block"
	AuditPrincipalOpen   = "principal.unblock"
	AuditPrincipalPrereq = "principal.prerequisites"
)

// Review statuses of plans and data-use requests.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
)

// Collection methods a plan may name (C2).
var PlanMethods = []string{"online_form", "system_log", "offline_survey", "sensor", "third_party"}

// Data-use methods a request may name (U1).
const (
	UseView     = "view"
	UseExport   = "export"
	UseAnalysis = "analysis"
)

// UseMethods lists the data-use methods.
var UseMethods = []string{UseView, UseExport, UseAnalysis}

// PlanItem is one field (or record type) a plan collects, with why it is
// necessary for the purpose.
type PlanItem struct {
	Name      string `json:"name"`
	Necessity string `json:"necessity"`
}

// Plan is a collection plan (C2): what a department means to collect, why,
// how and from where. Writes cite an approved, unexpired plan; its field
// list is what minimum-necessary checks against (C1), and provenance
// records its id (C6). A plan holds no personal data.
type Plan struct {
	ID          PlanID      `json:"id"`
	Department  string      `json:"department"`
	Purpose     string      `json:"purpose"`
	Description string      `json:"description"` // how the data serves the purpose
	Fields      []PlanItem  `json:"fields"`
	Records     []PlanItem  `json:"records,omitempty"`
	Sources     []string    `json:"sources"`
	Method      string      `json:"method"`
	Frequency   string      `json:"frequency"`
	Format      string      `json:"format"`
	ValidUntil  time.Time   `json:"valid_until"`
	Status      string      `json:"status"`
	FiledBy     PrincipalID `json:"filed_by"`
	FiledAt     time.Time   `json:"filed_at"`
	ReviewedBy  PrincipalID `json:"reviewed_by,omitempty"`
	ReviewedAt  *time.Time  `json:"reviewed_at,omitempty"`
	Reason      string      `json:"reason,omitempty"` // the reviewer's reason
}

// Covers reports whether the plan lists the field.
func (p *Plan) Covers(field string) bool { return hasItem(p.Fields, field) }

// CoversRecord reports whether the plan lists the record type.
func (p *Plan) CoversRecord(typ string) bool { return hasItem(p.Records, typ) }

// Active reports whether writes may cite the plan at t.
func (p *Plan) Active(t time.Time) bool { return p.Status == StatusApproved && t.Before(p.ValidUntil) }

func hasItem(items []PlanItem, name string) bool {
	for _, it := range items {
		if it.Name == name {
			return true
		}
	}
	return false
}

// PlanFilter selects plans. Nil fields match everything.
type PlanFilter struct {
	Status  *string
	Purpose *string
}

// GrantScope says which customers a data use covers: listed ids, or the
// customers created within a window (a simple filter).
type GrantScope struct {
	Subjects      []SubjectID `json:"subjects,omitempty"`
	CreatedAfter  *time.Time  `json:"created_after,omitempty"`
	CreatedBefore *time.Time  `json:"created_before,omitempty"`
}

// Grant is a data-use request (U1); once approved it is a grant the access
// decision honours for its holder only, within its scope and period.
type Grant struct {
	ID         GrantID     `json:"id"`
	Holder     PrincipalID `json:"holder"` // the applicant; only they may use it
	Purpose    string      `json:"purpose"`
	Fields     []string    `json:"fields,omitempty"`
	Categories []string    `json:"categories,omitempty"`
	Scope      GrantScope  `json:"scope"`
	Method     string      `json:"method"`
	Start      time.Time   `json:"start"`
	End        time.Time   `json:"end"`
	Reason     string      `json:"reason"` // why the use is needed
	Status     string      `json:"status"`
	AppliedAt  time.Time   `json:"applied_at"`
	ReviewedBy PrincipalID `json:"reviewed_by,omitempty"`
	ReviewedAt *time.Time  `json:"reviewed_at,omitempty"`
	Review     string      `json:"review,omitempty"` // the reviewer's reason
	// Expired is set once the end has passed and grant.expired was audited.
	Expired bool `json:"expired"`
}

// Active reports whether the grant is in force at t.
func (g *Grant) Active(t time.Time) bool {
	return g.Status == StatusApproved && !t.Before(g.Start) && t.Before(g.End)
}

// GrantFilter selects grants. Nil fields match everything.
type GrantFilter struct {
	Holder    *PrincipalID
	Status    *string
	EndBefore *time.Time // End <= this
	Expired   *bool
}

// Review is an approver's verdict on a plan or a data-use request.
type Review struct {
	Approve bool   `json:"approve"`
	Reason  string `json:"reason"`
}

// PlanService manages collection plans. Filing requires plan.file;
// reviewing requires plan.approve and a reviewer other than the filer.
type PlanService interface {
	// FilePlan validates and stores a pending plan. Returns EINVALID, EFORBIDDEN.
	FilePlan(ctx context.Context, p *Plan) error
	// ReviewPlan approves or rejects a pending plan. Returns ENOTFOUND,
	// ECONFLICT (not pending), EFORBIDDEN (self-approval, wrong role), EINVALID.
	ReviewPlan(ctx context.Context, id PlanID, r Review) (*Plan, error)
	// FindPlans lists plans, oldest first.
	FindPlans(ctx context.Context, f PlanFilter) ([]*Plan, error)
	// FindPlanByID returns one plan. Returns ENOTFOUND.
	FindPlanByID(ctx context.Context, id PlanID) (*Plan, error)
}

// GrantService manages data-use requests and grants. Applying requires
// use.apply; reviewing requires use.approve and a reviewer other than the
// applicant.
type GrantService interface {
	// ApplyGrant validates and stores a pending request for the caller.
	ApplyGrant(ctx context.Context, g *Grant) error
	// ReviewGrant approves or rejects a pending request.
	ReviewGrant(ctx context.Context, id GrantID, r Review) (*Grant, error)
	// FindGrants lists requests: reviewers see all, applicants their own.
	FindGrants(ctx context.Context, f GrantFilter) ([]*Grant, error)
}
