package custos

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Level is the protection grade of a field (分级).
type Level string

// Levels, from least to most protected.
const (
	LevelGeneral      Level = "general"      // 一般级
	LevelInternal     Level = "internal"     // 内部级
	LevelConfidential Level = "confidential" // 机密级
)

// Categories of personal information (S1).
const (
	CatIdentity       = "identity"
	CatContact        = "contact"
	CatAccount        = "account"
	CatTransaction    = "transaction"
	CatBehaviour      = "behaviour"
	CatInteraction    = "interaction"
	CatBiometric      = "biometric"
	CatOtherSensitive = "other_sensitive"
	CatMinors         = "minors"
)

// Categories lists every known category.
var Categories = []string{CatIdentity, CatContact, CatAccount, CatTransaction, CatBehaviour,
	CatInteraction, CatBiometric, CatOtherSensitive, CatMinors}

// Legal bases for processing (PIPL Art. 13).
const (
	BasisConsent         = "consent"
	BasisContract        = "contract"
	BasisLegalObligation = "legal_obligation"
)

// FieldDef is one catalog entry: a kind of personal information custos
// accepts, how it is validated, graded, shown and found.
type FieldDef struct {
	Name      string   `json:"name"`
	Label     string   `json:"label"`    // zh-CN
	LabelEN   string   `json:"label_en"` // en
	Category  string   `json:"category"`
	Level     Level    `json:"level"`
	Sensitive bool     `json:"sensitive"`         // PIPL sensitive PI; always confidential
	Validator string   `json:"validator"`         // name in package validate
	Enum      []string `json:"enum,omitempty"`    // allowed values for validator "enum"
	MaxLen    int      `json:"max_len,omitempty"` // for free text; 0 = validator default
	Mask      string   `json:"mask"`              // name in package mask
	Lookup    bool     `json:"lookup,omitempty"`  // blind-indexed; unique per subject
	Secret    bool     `json:"secret,omitempty"`  // hashed with argon2id, never returned
}

// Purpose is a declared processing purpose with its legal basis and the
// fields it may use (C1, U2).
type Purpose struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	LegalBasis  string   `json:"legal_basis"`
	Basic       bool     `json:"basic"` // necessary for the basic service
	Fields      []string `json:"fields"`
	Records     []string `json:"records"` // record types it may use
}

// Actions a role may be allowed to perform.
const (
	ActSubjectCreate   = "subject.create"
	ActSubjectRead     = "subject.read"
	ActSubjectUpdate   = "subject.update"
	ActSubjectErase    = "subject.erase"
	ActRecordCreate    = "record.create"
	ActRecordRead      = "record.read"
	ActPrincipalManage = "principal.manage"
	ActAuditRead       = "audit.read"
	ActImport          = "subject.import"
	ActNoticePublish   = "notice.publish"
	ActConsentRead     = "consent.read"
	ActConsentWrite    = "consent.write"
)

// Role is what a principal may do: actions, purposes it may act for,
// categories it may see, and whether internal-level fields are plain for it.
type Role struct {
	Name       string   `json:"name"`
	Actions    []string `json:"actions"`
	Purposes   []string `json:"purposes"`
	Categories []string `json:"categories"`
	Internal   bool     `json:"internal"` // internal-level fields come back plain
}

// RecordType is a kind of record appended to a subject (order, payment …).
type RecordType struct {
	Name     string `json:"name"`
	Category string `json:"category"`
	Level    Level  `json:"level"`
}

// Catalog is the company's data catalog. It is loaded once and read-only.
type Catalog struct {
	Version     string       `json:"version"`
	Fields      []FieldDef   `json:"fields"`
	Purposes    []Purpose    `json:"purposes"`
	Roles       []Role       `json:"roles"`
	RecordTypes []RecordType `json:"record_types"`

	fields   map[string]*FieldDef
	purposes map[string]*Purpose
	roles    map[string]*Role
	records  map[string]*RecordType
}

//go:embed catalog_default.json
var defaultCatalog []byte

// DefaultCatalog returns the embedded retail/e-commerce catalog.
func DefaultCatalog() *Catalog {
	c, err := ParseCatalog(strings.NewReader(string(defaultCatalog)))
	if err != nil {
		panic("custos: embedded catalog is invalid: " + err.Error())
	}
	return c
}

// ParseCatalog reads and checks a catalog in JSON. Returns EINVALID naming
// the first inconsistency.
func ParseCatalog(r io.Reader) (*Catalog, error) {
	var c Catalog
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, Errorf(EINVALID, "catalog: %v", err)
	}
	if err := c.index(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Catalog) index() error {
	bad := func(format string, args ...any) error {
		return Errorf(EINVALID, "catalog: "+format, args...)
	}
	c.fields = map[string]*FieldDef{}
	for i := range c.Fields {
		f := &c.Fields[i]
		if f.Name == "" || c.fields[f.Name] != nil {
			return bad("field %d: empty or duplicate name %q", i, f.Name)
		}
		if !slices.Contains(Categories, f.Category) {
			return bad("field %s: unknown category %q", f.Name, f.Category)
		}
		if !validLevel(f.Level) {
			return bad("field %s: unknown level %q", f.Name, f.Level)
		}
		if f.Sensitive && f.Level != LevelConfidential {
			return bad("field %s: sensitive personal information must be confidential", f.Name)
		}
		if f.Validator == "" {
			return bad("field %s: validator is required", f.Name)
		}
		if f.Secret && f.Lookup {
			return bad("field %s: a secret cannot be a lookup key", f.Name)
		}
		c.fields[f.Name] = f
	}
	c.records = map[string]*RecordType{}
	for i := range c.RecordTypes {
		rt := &c.RecordTypes[i]
		if rt.Name == "" || c.records[rt.Name] != nil {
			return bad("record type %d: empty or duplicate name %q", i, rt.Name)
		}
		if !slices.Contains(Categories, rt.Category) || !validLevel(rt.Level) {
			return bad("record type %s: unknown category or level", rt.Name)
		}
		c.records[rt.Name] = rt
	}
	c.purposes = map[string]*Purpose{}
	for i := range c.Purposes {
		p := &c.Purposes[i]
		if p.Name == "" || c.purposes[p.Name] != nil {
			return bad("purpose %d: empty or duplicate name %q", i, p.Name)
		}
		switch p.LegalBasis {
		case BasisConsent, BasisContract, BasisLegalObligation:
		default:
			return bad("purpose %s: unknown legal basis %q", p.Name, p.LegalBasis)
		}
		for _, f := range p.Fields {
			if c.fields[f] == nil {
				return bad("purpose %s: unknown field %q", p.Name, f)
			}
		}
		for _, r := range p.Records {
			if c.records[r] == nil {
				return bad("purpose %s: unknown record type %q", p.Name, r)
			}
		}
		c.purposes[p.Name] = p
	}
	c.roles = map[string]*Role{}
	for i := range c.Roles {
		r := &c.Roles[i]
		if r.Name == "" || c.roles[r.Name] != nil {
			return bad("role %d: empty or duplicate name %q", i, r.Name)
		}
		for _, p := range r.Purposes {
			if c.purposes[p] == nil {
				return bad("role %s: unknown purpose %q", r.Name, p)
			}
		}
		for _, cat := range r.Categories {
			if !slices.Contains(Categories, cat) {
				return bad("role %s: unknown category %q", r.Name, cat)
			}
		}
		c.roles[r.Name] = r
	}
	if c.roles[RoleAdmin] == nil {
		return bad("role %q is required", RoleAdmin)
	}
	return nil
}

// RoleAdmin is the role of the bootstrap principal.
const RoleAdmin = "admin"

func validLevel(l Level) bool {
	return l == LevelGeneral || l == LevelInternal || l == LevelConfidential
}

// Field returns the definition of a field, or nil.
func (c *Catalog) Field(name string) *FieldDef { return c.fields[name] }

// FieldName returns the catalog's own string for the field named b, and
// false when c is nil or has no such field: a decoder of stored names can
// then hand out the catalog's string instead of allocating one.
func (c *Catalog) FieldName(b []byte) (string, bool) {
	if c == nil {
		return "", false
	}
	if f, ok := c.fields[string(b)]; ok {
		return f.Name, true
	}
	return "", false
}

// Purpose returns a purpose, or nil.
func (c *Catalog) Purpose(name string) *Purpose { return c.purposes[name] }

// Role returns a role, or nil.
func (c *Catalog) Role(name string) *Role { return c.roles[name] }

// RecordType returns a record type, or nil.
func (c *Catalog) RecordType(name string) *RecordType { return c.records[name] }

// LookupFields returns the names of the blind-indexed fields.
func (c *Catalog) LookupFields() []string {
	var out []string
	for _, f := range c.Fields {
		if f.Lookup {
			out = append(out, f.Name)
		}
	}
	return out
}

// String describes the catalog without personal data.
func (c *Catalog) String() string {
	return fmt.Sprintf("catalog %s (%d fields, %d purposes, %d roles)", c.Version, len(c.Fields), len(c.Purposes), len(c.Roles))
}
