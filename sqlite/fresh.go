package sqlite

import (
	"context"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// A customer this process creates goes into the read cache with the
// commit that creates it (forty-ninth session, BENCHMARKS.md).
//
// The read cache used to fill only from reads, so the first read of each
// customer ran SQL: after an import or a seed every customer's first
// read, after a create the read that usually follows it (a sign-up, then
// the profile or the checkout). In `custos bench` the read step after
// seeding 10,000 customers spent a fifth of its reads so, and read about
// a fifth slower than a node that had read its customers once (-prime).
//
// A commit group's transaction notes the rows it inserts for a customer
// it creates: the subject row, its data key and the consents given with
// it, which are then the whole of what a read would find. After the
// commit and the group's invalidation, the writer puts them in the cache
// as a read would (putSubject), in the form a read returns them (times to
// the microsecond, in UTC). It leaves a customer out when the member that
// created it failed, when another statement in the group changed that
// customer's cached rows (tx.note), and it puts none when a statement
// changed cached rows without naming its customers, or when another
// process advanced the shared counter between this commit and the put:
// that process might have changed them after the commit.

// freshRows are the customers a commit group's transaction created.
type freshRows struct {
	byID    map[custos.SubjectID]int // index in entries
	entries []freshEntry
	// all: a statement changed cached rows without naming its customers.
	all bool
}

// freshEntry is one created customer's rows.
type freshEntry struct {
	id       custos.SubjectID
	member   int // the group member whose function inserted them
	st       *custos.StoredSubject
	key      *custos.DataKey
	consents []*custos.StoredConsent
	// spoiled: another statement changed the customer's cached rows.
	spoiled bool
}

func (f *freshRows) reset() {
	clear(f.byID)
	clear(f.entries)
	f.entries = f.entries[:0]
	f.all = false
}

// entry returns the entry of id, adding one for member when add is set
// (nil when there is none and add is not set).
func (f *freshRows) entry(id custos.SubjectID, member int, add bool) *freshEntry {
	if i, ok := f.byID[id]; ok {
		return &f.entries[i]
	}
	if !add {
		return nil
	}
	if f.byID == nil {
		f.byID = map[custos.SubjectID]int{}
	}
	f.byID[id] = len(f.entries)
	f.entries = append(f.entries, freshEntry{id: id, member: member})
	return &f.entries[len(f.entries)-1]
}

// undo drops the entries from the n-th on: a failed member's, whose
// statements were rolled back.
func (f *freshRows) undo(n int) {
	for _, e := range f.entries[n:] {
		delete(f.byID, e.id)
	}
	clear(f.entries[n:])
	f.entries = f.entries[:n]
}

// spoil marks the entries of ids as changed by another statement; no ids:
// all of them.
func (f *freshRows) spoil(ids []custos.SubjectID) {
	if len(ids) == 0 {
		f.all = true
		return
	}
	for _, id := range ids {
		if i, ok := f.byID[id]; ok {
			f.entries[i].spoiled = true
		}
	}
}

// freshLen is how many customers tx has noted as created so far (0 when
// it notes none).
func (tx *Tx) freshLen() int {
	if tx.fresh == nil {
		return 0
	}
	return len(tx.fresh.entries)
}

// InsertSubjects inserts ss (sqlutil.Stmts) and notes them as created.
func (tx *Tx) InsertSubjects(ctx context.Context, ss []*custos.StoredSubject) error {
	if err := tx.Stmts.InsertSubjects(ctx, ss); err != nil {
		return err
	}
	for _, s := range ss {
		tx.freshSubject(s)
	}
	return nil
}

// InsertDataKeys inserts ks (sqlutil.Stmts) and notes them for customers
// created in this transaction.
func (tx *Tx) InsertDataKeys(ctx context.Context, ks []*custos.DataKey) error {
	if err := tx.Stmts.InsertDataKeys(ctx, ks); err != nil {
		return err
	}
	for _, k := range ks {
		tx.freshKey(k)
	}
	return nil
}

// freshSubject notes the subject row s, just inserted.
func (tx *Tx) freshSubject(s *custos.StoredSubject) {
	if tx.fresh == nil {
		return
	}
	e := tx.fresh.entry(s.ID, tx.member, true)
	// As a read returns it: times to the microsecond in UTC, not yet
	// restricted (InsertSubject leaves restricted_until NULL).
	e.st = &custos.StoredSubject{ID: s.ID, Sealed: s.Sealed, CreatedAt: asStored(s.CreatedAt), UpdatedAt: asStored(s.UpdatedAt)}
}

// freshKey notes the data key k, just inserted. A key comes before its
// subject row (core inserts it first), so it starts the entry; an entry
// without a subject row is never put.
func (tx *Tx) freshKey(k *custos.DataKey) {
	if tx.fresh == nil {
		return
	}
	e := tx.fresh.entry(k.SubjectID, tx.member, true)
	e.key = &custos.DataKey{SubjectID: k.SubjectID, Version: k.Version, KEKVersion: k.KEKVersion, Wrapped: k.Wrapped, CreatedAt: asStored(k.CreatedAt)}
}

// freshConsents notes consents just inserted, with their seqs, for
// customers created in this transaction.
func (tx *Tx) freshConsents(cs []*custos.StoredConsent) {
	if tx.fresh == nil {
		return
	}
	for _, c := range cs {
		e := tx.fresh.entry(c.SubjectID, tx.member, false)
		if e == nil {
			continue
		}
		cc := *c
		cc.At = asStored(c.At)
		e.consents = append(e.consents, &cc)
	}
}

// asStored is t as the database gives it back: Unix microseconds, UTC.
func asStored(t time.Time) time.Time { return sqlutil.Time(sqlutil.Micros(t)) }

// putFresh puts the customers a committed group created in the read
// cache; errs are the members' outcomes, and sharedBefore the shared
// counter read before the group's COMMIT. Called by the writer after the
// group's invalidation, before its callers are answered.
func (db *DB) putFresh(errs []error, sharedBefore, ownAdvances uint64) {
	f := db.fresh
	if db.rc == nil || f == nil || len(f.entries) == 0 || f.all {
		return
	}
	defer f.reset()
	// Another process's advance since before the COMMIT: it may have
	// changed these customers after it. Leave them to the reads.
	stamp := cacheStamp{gen: db.rc.gen.Load(), shared: db.rc.shared.load()}
	if stamp.shared != sharedBefore+ownAdvances {
		return
	}
	for i := range f.entries {
		e := &f.entries[i]
		if e.st == nil || e.spoiled || e.member >= len(errs) || errs[e.member] != nil {
			continue
		}
		if db.rc.putSubject(stamp, e.st, e.key, e.consents) {
			db.rc.fresh.Add(1)
		}
	}
}
