// Package core is custos's one orchestrator: it implements the custos
// service interfaces on top of a custos.Store, the keys package and the
// policy decision. Every operation on personal data passes the access
// decision here and writes exactly one audit event in the same transaction
// as the change or read it describes (S5); there is no second path.
package core

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"custos"
	"custos/audit"
	"custos/keys"
	"custos/policy"
)

// DefaultCheckpointEvery is how many audit events pass between two signed
// checkpoints written inline.
const DefaultCheckpointEvery = 1000

// Service implements custos.SubjectService, custos.PrincipalService and
// custos.AuditService.
type Service struct {
	store   custos.Store
	catalog *custos.Catalog
	ring    atomic.Pointer[keys.Keyring]
	signer  *keys.Signer
	rand    io.Reader
	logger  *slog.Logger

	// Reload is called when a data key is wrapped by a master key version
	// this process does not hold (another process rotated the keyring);
	// it returns the current keyring. Nil disables reloading.
	Reload func() (*keys.Keyring, error)
	// CheckpointEvery is the number of audit events between inline signed
	// checkpoints; 0 means DefaultCheckpointEvery.
	CheckpointEvery int64
	// RequirePlan makes every write (subject create and update, record
	// create, import row) cite an approved, unexpired collection plan that
	// lists its fields (C2). custos serve turns it on; off is for
	// development and for in-process tools that write as the system.
	RequirePlan bool
	// RetentionLock, when set, is taken by RunRetention so that a sweep
	// asked for over the API never runs beside another node's (PostgreSQL
	// advisory lock); ok false means another holds it.
	RetentionLock func(ctx context.Context) (release func(), ok bool, err error)
	// Ledger, when set, records every erasure outside the store (S7).
	Ledger ShredLedger

	// Rights configures customer rights requests.
	Rights RightsOptions

	// ReaskAfter is how long after a refusal the company may not ask for
	// the same purpose again; 0 means DefaultReaskAfter.
	ReaskAfter time.Duration

	notices   noticeCache
	reloadMu  sync.Mutex
	indexer   atomic.Pointer[keys.Indexer]
	retention atomic.Pointer[custos.RetentionPolicy] // nil: the embedded defaults
	sweeping  atomic.Bool                            // a retention sweep runs in this process
	auth      authCache
	plans     planCache
	imports   chan struct{} // one token per import batch in work (ImportConcurrency)
	probes    importProbes  // per import job: probe for stored keys first, or insert first
	// import batches committed, probed first, written twice (ImportStats)
	importBatches, importProbed, importRerun atomic.Int64
}

// ImportConcurrency is how many import batches a node works on at once.
// The rest wait their turn before anything of them is prepared. With 256
// batches of 500 rows in flight, all prepared at once, a PostgreSQL node
// held 1.3 GiB; with this gate 472 MiB. At 64 in flight it stored 8–37 %
// more rows a second (paired runs) with half the memory, and a SQLite
// node as many rows with 40 % less (BENCHMARKS.md, seventh session).
const ImportConcurrency = 16

var (
	_ custos.SubjectService   = (*Service)(nil)
	_ custos.PrincipalService = (*Service)(nil)
	_ custos.AuditService     = (*Service)(nil)
)

// New returns a Service. logger may be nil.
func New(store custos.Store, cat *custos.Catalog, ring *keys.Keyring, signer *keys.Signer, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, catalog: cat, signer: signer, rand: rand.Reader, logger: logger,
		imports: make(chan struct{}, ImportConcurrency)}
	s.SetKeyring(ring)
	return s
}

// Catalog returns the catalog in force.
func (s *Service) Catalog() *custos.Catalog { return s.catalog }

// Keyring returns the keyring in force.
func (s *Service) Keyring() *keys.Keyring { return s.ring.Load() }

// SetKeyring replaces the keyring in force (after a rotation elsewhere).
func (s *Service) SetKeyring(k *keys.Keyring) {
	s.ring.Store(k)
	s.indexer.Store(k.Indexer())
}

// unwrap returns the plaintext data key, reloading the keyring once if the
// key is wrapped by a master key version this process has not seen yet.
func (s *Service) unwrap(dk *custos.DataKey) ([]byte, error) {
	dek, err := s.ring.Load().Unwrap(dk.KEKVersion, dk.Wrapped)
	if err == nil || s.Reload == nil || custos.ErrorCode(err) != custos.ESEALED {
		return dek, err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if k := s.ring.Load(); k.CurrentVersion() < dk.KEKVersion {
		nk, rerr := s.Reload()
		if rerr != nil {
			return nil, errors.Join(err, rerr)
		}
		s.SetKeyring(nk)
	}
	return s.ring.Load().Unwrap(dk.KEKVersion, dk.Wrapped)
}

// aead unwraps a subject's data key and returns a sealer for its values.
// The plaintext key is wiped once the cipher holds its own schedule.
func (s *Service) aead(dk *custos.DataKey) (*keys.AEAD, error) {
	dek, err := s.unwrap(dk)
	if err != nil {
		return nil, err
	}
	defer keys.Zero(dek)
	return keys.NewAEAD(dek)
}

// event starts an audit event for the actor and request in ctx.
func event(ctx context.Context, action string, sub custos.SubjectID, purposes []string, fields []string) *custos.AuditEvent {
	e := &custos.AuditEvent{Action: action, SubjectID: sub, Purposes: purposes, Fields: fields,
		Decision: custos.DecisionAllow, RequestID: custos.RequestIDFromContext(ctx)}
	if a := custos.ActorFromContext(ctx); a != nil {
		e.ActorID = a.ID
	}
	return e
}

// appendAudit chains e onto the log inside tx and, every CheckpointEvery
// events, signs a checkpoint of the head in the same transaction.
//
// When tx offers it (custos.AtEnder), the append is deferred to the end
// of the transaction: it still commits with the change it describes, or
// not at all, but the store can append the events of several requests
// sharing one commit under one hold of the append lock. e's Seq and Hash
// are then set only at that end; no caller reads them before.
func (s *Service) appendAudit(ctx context.Context, tx custos.Tx, e *custos.AuditEvent) error {
	if at, ok := tx.(custos.AtEnder); ok {
		at.AtEnd(func(tx custos.Tx) error { return s.chainAudit(ctx, tx, e) })
		return nil
	}
	return s.chainAudit(ctx, tx, e)
}

// chainAudit is appendAudit's append, run at once.
func (s *Service) chainAudit(ctx context.Context, tx custos.Tx, e *custos.AuditEvent) error {
	s.noteCheckpoints(tx)
	seq, head, err := tx.AuditHead(ctx)
	if err != nil {
		return err
	}
	e.Time = tx.Now()
	audit.Chain(seq, head, e)
	if err := tx.InsertAuditEvent(ctx, e); err != nil {
		return err
	}
	every := s.CheckpointEvery
	if every <= 0 {
		every = DefaultCheckpointEvery
	}
	if s.signer != nil && e.Seq%every == 0 {
		return s.insertCheckpoint(ctx, tx, e.Seq, e.Hash)
	}
	return nil
}

// checkpointNoter is a Tx that chains events where it stores them
// (postgres, an end in one round trip) and must therefore know where
// core signs checkpoints.
type checkpointNoter interface{ NoteCheckpointEvery(n int64) }

// noteCheckpoints tells tx the checkpoint interval, 0 when this service
// signs none.
func (s *Service) noteCheckpoints(tx custos.Tx) {
	n, ok := tx.(checkpointNoter)
	if !ok {
		return
	}
	every := s.CheckpointEvery
	if every <= 0 {
		every = DefaultCheckpointEvery
	}
	if s.signer == nil {
		every = 0
	}
	n.NoteCheckpointEvery(every)
}

func (s *Service) insertCheckpoint(ctx context.Context, tx custos.Tx, seq int64, hash []byte) error {
	t := tx.Now()
	sig := s.signer.Sign(audit.CheckpointMessage(seq, hash, t))
	return tx.InsertCheckpoint(ctx, &custos.AuditCheckpoint{Seq: seq, Hash: hash, Time: t, KeyID: s.signer.KeyID(), Signature: sig})
}

// Checkpoint signs the current head of the audit chain if it is not signed
// yet. Jobs call it periodically and at shutdown.
func (s *Service) Checkpoint(ctx context.Context) error {
	if s.signer == nil {
		return nil
	}
	return s.store.Update(ctx, func(tx custos.Tx) error {
		seq, head, err := tx.AuditHead(ctx)
		if err != nil || seq == 0 {
			return err
		}
		last, err := tx.LastCheckpoint(ctx)
		if err != nil {
			return err
		}
		if last != nil && last.Seq >= seq {
			return nil
		}
		return s.insertCheckpoint(ctx, tx, seq, head)
	})
}

// run executes fn and the audit event e in one write transaction. If fn
// refuses the operation with a client error (not found, conflict, invalid,
// forbidden), the refusal itself is audited in a transaction of its own, so
// denied attempts are as traceable as granted ones.
func (s *Service) run(ctx context.Context, e *custos.AuditEvent, fn func(tx custos.Tx) error) error {
	err := s.store.Update(ctx, func(tx custos.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, e)
	})
	if err == nil {
		return nil
	}
	return s.auditFailure(ctx, e, err)
}

// auditFailure audits e as refused when err is a client error (not found,
// conflict, invalid, forbidden), in a transaction of its own, and returns
// err.
func (s *Service) auditFailure(ctx context.Context, e *custos.AuditEvent, err error) error {
	switch code := custos.ErrorCode(err); code {
	case custos.EINTERNAL, custos.ESEALED:
		return err
	default:
		e.Decision, e.Reason = custos.DecisionDeny, code
		if aerr := s.store.Update(ctx, func(tx custos.Tx) error { return s.appendAudit(ctx, tx, e) }); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
}

// runRead executes fn, which only reads, on a consistent snapshot of the
// store, then appends the audit event e in a write transaction of its own,
// and returns only once that event is committed: no data leaves without a
// durable record of the access, as with run. fn's client errors are
// audited as refusals, as run does.
//
// Why not one write transaction, as STYLE §5 asks: for a read the audit
// event is the only write. Fetching, deciding and the consent lookup in
// the store's single writer made the writer the limit on every read (61 %
// of the read path's CPU; BENCHMARKS.md "Where the time goes"), while a
// read snapshot runs beside the writer on the read pool. What the split
// changes is only the order of a read against a write committed while
// the read is in flight (between its snapshot and its audit commit): the
// read is then ordered before that write, as it would be had it won the
// race for the writer. A read that starts after an erasure, withdrawal,
// restriction or block has committed sees it — the guarantees the tests
// check (erased stays erased, withdrawal applies to the next request).
// The audit event records the decision taken on that snapshot.
func (s *Service) runRead(ctx context.Context, e *custos.AuditEvent, fn func(tx custos.Tx) error) error {
	return s.runReadWith(ctx, e, s.store.View, fn)
}

// glanceRead is runRead for a read of one subject, which a store that can
// (custos.Glancer: PostgreSQL) runs outside a transaction when fn reads
// with one statement. fn must be safe to run again, more than once where
// the store answered from a cache that proved stale.
func (s *Service) glanceRead(ctx context.Context, e *custos.AuditEvent, fn func(tx custos.Tx) error) error {
	if p, ok := s.store.(custos.ReadProver); ok {
		return s.provenRead(ctx, e, p, fn)
	}
	if g, ok := s.store.(custos.Glancer); ok {
		return s.runReadWith(ctx, e, g.Glance, fn)
	}
	return s.runRead(ctx, e, fn)
}

// provenRead is glanceRead on a store whose Glance may answer from a
// cache another node's write has made stale (custos.ReadProver): the
// Update that audits the read then fails with ErrStaleRead and commits
// nothing for it, and the read runs again from the tables, where fn's
// second run overwrites what its first read.
func (s *Service) provenRead(ctx context.Context, e *custos.AuditEvent, p custos.ReadProver, fn func(tx custos.Tx) error) error {
	ctx, proof := custos.WithReadProof(ctx)
	err := s.runReadWith(ctx, e, p.Glance, fn)
	if errors.Is(err, custos.ErrStaleRead) {
		*proof = custos.ReadProof{Bypass: true}
		err = s.runReadWith(ctx, e, p.Glance, fn)
	}
	return err
}

// runReadWith is runRead with view in place of the store's View.
func (s *Service) runReadWith(ctx context.Context, e *custos.AuditEvent, view func(context.Context, func(custos.Tx) error) error, fn func(tx custos.Tx) error) error {
	if err := view(ctx, fn); err != nil {
		return s.auditFailure(ctx, e, err)
	}
	return s.store.Update(ctx, func(tx custos.Tx) error { return s.appendAudit(ctx, tx, e) })
}

// refuse audits a request the access decision refused as a whole and
// returns EFORBIDDEN naming the reason code (never a value).
func (s *Service) refuse(ctx context.Context, e *custos.AuditEvent, reason string) error {
	return s.refuseAll(ctx, []*custos.AuditEvent{e}, reason)
}

// refuseAll is refuse for a request about several subjects: each of their
// events es is audited as refused, in one transaction.
func (s *Service) refuseAll(ctx context.Context, es []*custos.AuditEvent, reason string) error {
	for _, e := range es {
		e.Decision, e.Reason = custos.DecisionDeny, reason
	}
	if err := s.store.Update(ctx, func(tx custos.Tx) error { return s.appendAudits(ctx, tx, es) }); err != nil {
		return err
	}
	if reason == policy.ReasonPrincipalUnknown {
		return custos.Errorf(custos.EUNAUTHORIZED, "Authentication required.")
	}
	field, detail := "purpose", ""
	switch reason {
	case policy.ReasonActionNotAllowed:
		field = "action"
	case policy.ReasonPrincipalBlocked:
		field = "principal"
	case policy.ReasonPrerequisites:
		field = "principal"
		if p := custos.ActorFromContext(ctx); p != nil {
			detail = "staff prerequisites missing or expired: " + strings.Join(p.Prerequisites.Missing(time.Now()), ", ")
		}
	}
	return &custos.Error{Code: custos.EFORBIDDEN, Message: "Access refused: " + reason + ".",
		Violations: []custos.Violation{{Field: field, Rule: reason, Detail: detail}}}
}

// decide runs the access decision for the actor in ctx, before the
// subject's consents are known (steps 1–3 and 5; step 4 passes).
func (s *Service) decide(ctx context.Context, action string, purposes, fields, records []string) policy.Decision {
	return s.decideFull(ctx, action, purposes, fields, records, nil, nil)
}

// decideBasis runs the access decision with basis as step 4 (nil when no
// declared purpose rests on consent).
func (s *Service) decideBasis(ctx context.Context, action string, purposes, fields, records []string, basis func(string, string) string) policy.Decision {
	return s.decideFull(ctx, action, purposes, fields, records, basis, nil)
}

// decideWith runs the access decision with a grant hook (step 5).
func (s *Service) decideWith(ctx context.Context, action string, purposes, fields, records []string, grant func(purpose, field string) string) policy.Decision {
	return s.decideFull(ctx, action, purposes, fields, records, nil, grant)
}

// decideFull runs the whole access decision: basis is step 4, grant step 5.
func (s *Service) decideFull(ctx context.Context, action string, purposes, fields, records []string, basis func(string, string) string, grant func(purpose, field string) string) policy.Decision {
	return policy.Decide(s.catalog, policy.Request{
		Principal: custos.ActorFromContext(ctx), Action: action, Purposes: purposes,
		Fields: fields, Records: records, Now: time.Now(), Basis: basis, Grant: grant,
	})
}

func dekAAD(table, field string, id custos.SubjectID, rec custos.RecordID, version int) []byte {
	return keys.AAD(table, field, string(id), string(rec), "v"+strconv.Itoa(version))
}

// appendDekAAD is dekAAD appended to dst, for a reader opening several
// values.
func appendDekAAD(dst []byte, table, field string, id custos.SubjectID, rec custos.RecordID, version int) []byte {
	return keys.AppendAAD(dst, table, field, string(id), string(rec), "v"+strconv.Itoa(version))
}
