package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"

	"custos"
)

// Problem kinds.
const (
	// KindAltered: an event's contents no longer match its hash, an event was
	// edited and its hash recomputed (the next event no longer links to it),
	// or the chain was rewritten after a signed checkpoint.
	KindAltered = "altered"
	// KindRemoved: events are missing, with or without the later events
	// renumbered. Problem.Seq is the first missing seq.
	KindRemoved = "removed"
	// KindInserted: an event that was never part of the chain was added (a
	// forged event, a copy of an earlier event, a duplicate seq).
	KindInserted = "inserted"
	// KindReordered: genuine events were moved to other seq numbers.
	KindReordered = "reordered"
	// KindCheckpoint: a checkpoint's signature does not verify under the
	// given public key, or the checkpoint is malformed.
	KindCheckpoint = "checkpoint"
	// KindTruncated: a checkpoint is signed past the last stored event.
	// Problem.Seq is the first missing seq.
	KindTruncated = "truncated"
)

// SearchRadius bounds how far from its stored position Verify looks for the
// seq an out-of-place event was written with. An event moved further than
// this (and not found through the events after it) is reported as inserted
// rather than reordered or removed; the seq reported is unaffected.
const SearchRadius = 1 << 16

// Problem is the first thing wrong with an audit log.
type Problem struct {
	Kind   string `json:"kind"`
	Seq    int64  `json:"seq"` // the first offending event's seq (for removed and truncated: the first missing seq)
	Detail string `json:"detail"`
}

// Report is the outcome of verifying an audit log.
type Report struct {
	OK          bool     `json:"ok"`
	Events      int64    `json:"events"`      // events read
	Checkpoints int      `json:"checkpoints"` // checkpoints whose signature and hash matched
	Problem     *Problem `json:"problem,omitempty"`
	Err         error    `json:"-"` // reading events failed; the log was not fully verified
}

// Events yields stored audit events in seq order, or an error that ends the
// walk. It is the shape of an iterator over a database query.
type Events = iter.Seq2[*custos.AuditEvent, error]

// Verify walks events in stored (seq) order and checks the hash chain and
// the checkpoints, which must be signed by pub. It reads each event once and
// keeps O(1) state besides the checkpoints, so it verifies logs of any
// length. It stops reading as soon as the first problem is settled
// (classifying a break in the chain may read on to the end of the log).
// See Verifier for the rules.
func Verify(events Events, checkpoints []*custos.AuditCheckpoint, pub ed25519.PublicKey) *Report {
	v := NewVerifier(checkpoints, pub)
	var readErr error
	for e, err := range events {
		if err == nil && e == nil {
			err = ErrNilEvent
		}
		if err != nil {
			readErr = err
			break
		}
		if !v.Add(e) {
			break
		}
	}
	return v.Finish(readErr)
}

// Verifier checks an audit log fed to it one event at a time in seq order:
// the streaming form of Verify, for callers that read the log in pages.
//
// For each event it recomputes Hash(event.PrevHash, event) and compares
// event.PrevHash with the previous event's stored hash. At the first break it
// classifies what an attacker with database access did, reading further
// events where that is needed:
//   - a gap in seq numbers: removed, at the first missing seq;
//   - the event links to its predecessor but its hash does not match: its
//     contents were edited (altered);
//   - the event does not link, but its hash matches with its own seq: the
//     predecessor was edited and its hash recomputed (altered, at the
//     predecessor), unless the predecessor's true successor turns up later
//     or a checkpoint vouches for the predecessor (then this event was
//     inserted);
//   - the event's hash matches only with another seq o: it was written as
//     event o. If o is later and the event that belongs here turns up later,
//     events were reordered; if it never does, events were removed and the
//     rest renumbered; if event o itself turns up later, this is a copy
//     (inserted). If o is earlier, the events stored from o on were inserted
//     (or, when the event that belongs here turns up later, this is a copy
//     of event o);
//   - the event matches nowhere: inserted, unless the next event links to it
//     (then its prev hash or contents were edited: altered).
//
// Checkpoints are checked as the walk reaches their seq: a bad signature is a
// checkpoint problem; a stored hash that differs from a signed one means the
// chain was rewritten after the checkpoint (altered, at the checkpoint's
// seq); a valid checkpoint past the last event means the tail was truncated.
// The problem with the lowest seq is reported; on a tie, a break in the
// chain wins over a checkpoint mismatch, as it is the more precise.
//
// A Verifier is not safe for concurrent use.
type Verifier struct {
	cps  []*custos.AuditCheckpoint // valid signature, sorted by seq
	next int                       // index into cps of the next checkpoint to check

	events    int64
	matched   int
	lastGood  int64 // seq of the last checkpoint matched before any mismatch
	signedSeq int64 // seq of the last event a checkpoint matched
	prevSeq   int64
	prevHash  []byte

	sigProblem   *Problem // lowest-seq bad checkpoint signature
	cpProblem    *Problem // first checkpoint whose hash the stored chain does not match
	chainProblem *Problem // first break in the chain, once settled
	pending      *anomaly // a break being classified from later events
	done         bool
}

// anomaly is the first break in the chain, kept while later events are read
// to classify it.
type anomaly struct {
	e        int64  // expected seq: the stored seq of the event that broke the chain
	pHash    []byte // stored hash of the event before it (Genesis at the start)
	rPrev    []byte // its stored prev hash
	rHash    []byte // its stored hash
	buf      []byte // its encoding, with Seq at off, for trying other seqs
	off      int
	o        int64 // seq its hash matches with; 0 if none found yet
	pSigned  bool  // a checkpoint vouches for the event before it
	foundX   bool  // a later event links to pHash: the event that belongs at e
	xSeq     int64
	dup      bool // a later event has the same stored hash: this one is a copy
	dupSeq   int64
	checked  bool // the event after it has been seen
	nextLink bool // the event after it links to it
}

// NewVerifier returns a Verifier for checkpoints signed by pub. Checkpoint
// signatures are checked here, once.
func NewVerifier(checkpoints []*custos.AuditCheckpoint, pub ed25519.PublicKey) *Verifier {
	v := &Verifier{prevHash: append([]byte(nil), genesis[:]...)}
	for _, cp := range checkpoints {
		var p *Problem
		switch {
		case cp == nil:
			p = &Problem{Kind: KindCheckpoint, Seq: 0, Detail: "empty checkpoint"}
		case len(pub) != ed25519.PublicKeySize:
			p = &Problem{Kind: KindCheckpoint, Seq: cp.Seq, Detail: "no valid checkpoint public key"}
		case !VerifyCheckpoint(pub, cp):
			p = &Problem{Kind: KindCheckpoint, Seq: cp.Seq,
				Detail: fmt.Sprintf("signature of the checkpoint at seq %d (key %q) does not verify", cp.Seq, cp.KeyID)}
		case cp.Seq < 1:
			p = &Problem{Kind: KindCheckpoint, Seq: cp.Seq, Detail: fmt.Sprintf("checkpoint at invalid seq %d", cp.Seq)}
		default:
			v.cps = append(v.cps, cp)
			continue
		}
		if v.sigProblem == nil || p.Seq < v.sigProblem.Seq {
			v.sigProblem = p
		}
	}
	slices.SortStableFunc(v.cps, func(a, b *custos.AuditCheckpoint) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return v
}

// Add checks the next stored event; a nil event is ignored. It returns
// false once the outcome is settled and no more events are needed; call
// Finish then, or after the last event.
func (v *Verifier) Add(ev *custos.AuditEvent) bool {
	if v.done {
		return false
	}
	if ev == nil {
		return true
	}
	v.events++
	if v.pending != nil {
		return v.look(ev)
	}

	exp := v.prevSeq + 1
	switch {
	case ev.Seq < 1:
		return v.settle(&Problem{Kind: KindInserted, Seq: ev.Seq, Detail: fmt.Sprintf("event with invalid seq %d", ev.Seq)})
	case ev.Seq == v.prevSeq:
		return v.settle(&Problem{Kind: KindInserted, Seq: ev.Seq, Detail: fmt.Sprintf("two events carry seq %d", ev.Seq)})
	case ev.Seq < v.prevSeq:
		return v.settle(&Problem{Kind: KindReordered, Seq: ev.Seq,
			Detail: fmt.Sprintf("event %d is stored after event %d: the log is not in seq order", ev.Seq, v.prevSeq)})
	case ev.Seq > exp:
		return v.settle(&Problem{Kind: KindRemoved, Seq: exp, Detail: missing(exp, ev.Seq-1) + " missing"})
	}

	link := bytes.Equal(ev.PrevHash, v.prevHash)
	sum := hashArray(ev.PrevHash, ev)
	self := bytes.Equal(sum[:], ev.Hash)
	switch {
	case link && self:
		v.checkpoints(ev)
		v.prevSeq = ev.Seq
		v.prevHash = append(v.prevHash[:0], ev.Hash...)
		return true
	case link:
		return v.settle(&Problem{Kind: KindAltered, Seq: ev.Seq,
			Detail: fmt.Sprintf("contents of event %d do not match its hash", ev.Seq)})
	}

	// The chain breaks here: find which seq this event was written with and
	// read on to see where the event that belongs here went.
	a := &anomaly{
		e:       exp,
		pHash:   bytes.Clone(v.prevHash),
		rPrev:   bytes.Clone(ev.PrevHash),
		rHash:   bytes.Clone(ev.Hash),
		buf:     appendEvent(nil, ev.PrevHash, ev),
		off:     seqOffset(ev.PrevHash),
		pSigned: v.prevSeq > 0 && v.signedSeq == v.prevSeq,
	}
	if self {
		a.o = exp
	} else {
		a.search()
	}
	v.pending = a
	return true
}

// checkpoints checks the signed checkpoints at ev.Seq against ev, which
// links correctly to the verified chain before it.
func (v *Verifier) checkpoints(ev *custos.AuditEvent) {
	for ; v.next < len(v.cps) && v.cps[v.next].Seq <= ev.Seq; v.next++ {
		cp := v.cps[v.next]
		if cp.Seq != ev.Seq {
			continue // unreachable: seqs before ev were all seen
		}
		if bytes.Equal(cp.Hash, ev.Hash) {
			v.matched++
			v.signedSeq = ev.Seq
			if v.cpProblem == nil {
				v.lastGood = cp.Seq
			}
			continue
		}
		if v.cpProblem == nil {
			v.cpProblem = &Problem{Kind: KindAltered, Seq: cp.Seq, Detail: fmt.Sprintf(
				"event %d does not match the checkpoint signed at seq %d: the chain was rewritten after the checkpoint (the edit lies in seq %d..%d)",
				cp.Seq, cp.Seq, v.lastGood+1, cp.Seq)}
		}
	}
}

// search looks for the seq the event's hash was computed with, nearest to
// its stored position first.
func (a *anomaly) search() {
	for d := int64(1); d <= SearchRadius; d++ {
		if a.try(a.e + d) {
			return
		}
		if a.e-d >= 1 && a.try(a.e-d) {
			return
		}
	}
}

// try reports whether the event's stored hash is its hash at seq s, and
// records s if so.
func (a *anomaly) try(s int64) bool {
	if s < 1 {
		return false
	}
	binary.BigEndian.PutUint64(a.buf[a.off:], uint64(s))
	sum := sha256.Sum256(a.buf)
	if bytes.Equal(sum[:], a.rHash) {
		a.o = s
		return true
	}
	return false
}

// look reads an event after the break to classify it.
func (v *Verifier) look(ev *custos.AuditEvent) bool {
	a := v.pending
	if !a.checked {
		a.checked = true
		a.nextLink = bytes.Equal(ev.PrevHash, a.rHash)
	}
	if !a.dup && bytes.Equal(ev.Hash, a.rHash) {
		a.dup, a.dupSeq = true, ev.Seq
	}
	if a.o == 0 && bytes.Equal(ev.Hash, a.rPrev) {
		a.try(ev.Seq + 1) // the event was written right after this one
	}
	if !a.foundX && bytes.Equal(ev.PrevHash, a.pHash) {
		a.foundX, a.xSeq = true, ev.Seq
		if a.o == 0 {
			a.try(ev.Seq) // the two may have swapped places
		}
	}
	// Settle as soon as no later event can change the answer. An event
	// written later in the chain and found here could still be a copy,
	// which a later duplicate of its hash would show.
	if a.foundX && (a.o <= a.e || a.dup) {
		return v.settle(a.classify(v.prevSeq))
	}
	return true
}

// classify names the break, given everything read so far. p is the seq of
// the last event that verified.
func (a *anomaly) classify(p int64) *Problem {
	e, o := a.e, a.o
	switch {
	case o == e && a.foundX:
		return &Problem{Kind: KindInserted, Seq: e, Detail: fmt.Sprintf(
			"event %d is not part of the chain; the event that belongs there is stored at seq %d", e, a.xSeq)}
	case o == e && a.pSigned:
		return &Problem{Kind: KindInserted, Seq: e, Detail: fmt.Sprintf(
			"event %d does not link to event %d, which a checkpoint vouches for", e, p)}
	case o == e && p == 0:
		return &Problem{Kind: KindAltered, Seq: e, Detail: "the first event does not start from the genesis hash"}
	case o == e:
		return &Problem{Kind: KindAltered, Seq: p, Detail: fmt.Sprintf(
			"event %d was edited and its hash recomputed: event %d no longer links to it", p, e)}
	case o > e && a.dup:
		return &Problem{Kind: KindInserted, Seq: e, Detail: fmt.Sprintf(
			"event stored at seq %d is a copy of event %d, which is stored at seq %d", e, o, a.dupSeq)}
	case o > e && a.foundX:
		return &Problem{Kind: KindReordered, Seq: e, Detail: fmt.Sprintf(
			"event stored at seq %d was written as seq %d; the event written as seq %d is stored at seq %d", e, o, e, a.xSeq)}
	case o > e:
		return &Problem{Kind: KindRemoved, Seq: e, Detail: fmt.Sprintf(
			"%s removed and the later events renumbered", missing(e, o-1))}
	case o > 0 && a.foundX:
		return &Problem{Kind: KindInserted, Seq: e, Detail: fmt.Sprintf(
			"event stored at seq %d is a copy of event %d", e, o)}
	case o > 0:
		return &Problem{Kind: KindInserted, Seq: o, Detail: fmt.Sprintf(
			"%s inserted; the event stored at seq %d was written as seq %d", plural(o, e-1), e, o)}
	case a.foundX:
		return &Problem{Kind: KindInserted, Seq: e, Detail: fmt.Sprintf(
			"event %d is not part of the chain; the event that belongs there is stored at seq %d", e, a.xSeq)}
	case a.nextLink:
		return &Problem{Kind: KindAltered, Seq: e, Detail: fmt.Sprintf(
			"the prev hash or contents of event %d were edited: it no longer links to event %d", e, p)}
	default:
		return &Problem{Kind: KindInserted, Seq: e, Detail: fmt.Sprintf(
			"event %d does not link to event %d and matches no position in the chain", e, p)}
	}
}

func (v *Verifier) settle(p *Problem) bool {
	v.chainProblem = p
	v.pending = nil
	v.done = true
	return false
}

// Finish ends the walk and returns the report. readErr is the error that
// stopped reading events, if any: the report then fails with Err set, and
// names the problem found so far, if any.
func (v *Verifier) Finish(readErr error) *Report {
	if a := v.pending; a != nil {
		v.settle(a.classify(v.prevSeq))
	}
	v.done = true
	r := &Report{Events: v.events, Checkpoints: v.matched, Err: readErr}

	var trunc *Problem
	if v.chainProblem == nil && readErr == nil && v.next < len(v.cps) {
		cp := v.cps[v.next]
		trunc = &Problem{Kind: KindTruncated, Seq: v.prevSeq + 1, Detail: fmt.Sprintf(
			"the log ends at seq %d but a checkpoint is signed at seq %d", v.prevSeq, cp.Seq)}
	}
	// Lowest seq wins; on a tie the earlier candidate in this list.
	for _, p := range []*Problem{v.chainProblem, v.cpProblem, v.sigProblem, trunc} {
		if p != nil && (r.Problem == nil || p.Seq < r.Problem.Seq) {
			r.Problem = p
		}
	}
	r.OK = r.Problem == nil && readErr == nil
	return r
}

// ErrNilEvent is reported when an event iterator yields a nil event.
var ErrNilEvent = errors.New("audit: nil event")

func missing(from, to int64) string {
	if from == to {
		return fmt.Sprintf("event %d", from)
	}
	return fmt.Sprintf("events %d..%d", from, to)
}

func plural(from, to int64) string {
	if from == to {
		return fmt.Sprintf("event %d was", from)
	}
	return fmt.Sprintf("events %d..%d were", from, to)
}
