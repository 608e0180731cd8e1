// Package audit hash-chains custos's audit log and verifies it (S5).
//
// Every event's hash covers the previous event's hash and a canonical,
// length-prefixed encoding of all of the event's fields, so editing,
// removing, inserting or reordering a stored event breaks the chain at that
// event. Someone with write access to the database can still recompute the
// whole chain after an edit; Ed25519-signed checkpoints of the chain head,
// written at intervals with a key the database does not hold, catch that and
// a truncated tail. Verify walks the log once, in seq order, holding O(1)
// state, and reports the first bad event.
//
// The package is pure: no I/O, no clock, no randomness.
package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"time"

	"custos"
)

// Genesis is the prev hash of the first event: 32 zero bytes. Do not modify
// it; this package compares against its own private copy.
var Genesis = make([]byte, sha256.Size)

// genesis is the private copy used by Chain and Verify, so that a caller
// writing into Genesis cannot change what a valid chain looks like.
var genesis [sha256.Size]byte

// Domain separation tags. A hash or signature made for one purpose can
// never be mistaken for one made for another.
const (
	eventDomain      = "custos-audit-event-v1"
	checkpointDomain = "custos-audit-checkpoint-v1"
)

// TimePrecision is the precision Chain keeps in AuditEvent.Time. PostgreSQL's
// timestamptz stores microseconds; an event hashed with nanoseconds would no
// longer verify after a round trip through it.
const TimePrecision = time.Microsecond

// Hash returns SHA-256 over prev and a canonical encoding of every field of
// e except PrevHash and Hash: Seq, Time (UTC, RFC 3339 with nanoseconds),
// ActorID, Action, SubjectID, Fields, Purposes, Decision, Reason and
// RequestID. Every part is length-prefixed and lists carry their length, so
// no two different events share an encoding. A nil and an empty list encode
// the same, because a database round trip may turn one into the other.
func Hash(prev []byte, e *custos.AuditEvent) []byte {
	sum := hashArray(prev, e)
	return sum[:]
}

// hashArray is Hash without the allocation of its result.
func hashArray(prev []byte, e *custos.AuditEvent) [sha256.Size]byte {
	var buf [512]byte
	return sha256.Sum256(appendEvent(buf[:0], prev, e))
}

// appendEvent appends the canonical encoding of (prev, e). Seq is a fixed
// 8 bytes at offset seqOffset(prev), which lets Verify try other seq values
// without encoding the event again.
func appendEvent(b, prev []byte, e *custos.AuditEvent) []byte {
	b = appendBytes(b, []byte(eventDomain))
	b = appendBytes(b, prev)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	return appendTail(b, e)
}

// HashPrefix and Tail split what Hash hashes around the previous hash
// and the seq, for a store that chains events where their head is read
// (PostgreSQL, under its append lock): Hash(prev, e) is SHA-256 of
// HashPrefix(), prev's length as 8 bytes big-endian, prev, e.Seq as 8
// bytes big-endian, and Tail(e). Tail does not depend on Seq or the
// previous hash; e.Time must be normalised as Chain does.
func HashPrefix() []byte { return appendBytes(nil, []byte(eventDomain)) }

// Tail is the part of e's encoding after its seq (see HashPrefix).
func Tail(e *custos.AuditEvent) []byte { return appendTail(nil, e) }

// appendTail appends the encoding of e after its seq.
func appendTail(b []byte, e *custos.AuditEvent) []byte {
	b = appendTime(b, e.Time)
	b = appendString(b, string(e.ActorID))
	b = appendString(b, e.Action)
	b = appendString(b, string(e.SubjectID))
	b = appendList(b, e.Fields)
	b = appendList(b, e.Purposes)
	b = appendString(b, e.Decision)
	b = appendString(b, e.Reason)
	b = appendString(b, e.RequestID)
	return b
}

// seqOffset is where appendEvent writes Seq.
func seqOffset(prev []byte) int {
	return 8 + len(eventDomain) + 8 + len(prev)
}

func appendBytes(b, p []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	return append(b, p...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendTime appends t in UTC as RFC 3339 with nanoseconds, length-prefixed.
func appendTime(b []byte, t time.Time) []byte {
	n := len(b)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	binary.BigEndian.PutUint64(b[n:], uint64(len(b)-n-8))
	return b
}

func appendList(b []byte, l []string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(l)))
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

// Chain links e after the event (prevSeq, prevHash): it sets e.Seq to
// prevSeq+1, e.PrevHash to a copy of prevHash (Genesis when prevHash is nil)
// and e.Hash. It first normalises e.Time to UTC truncated to TimePrecision,
// so the hash survives storage in either database. Call it with prevSeq 0
// and a nil prevHash for the first event.
func Chain(prevSeq int64, prevHash []byte, e *custos.AuditEvent) {
	if prevHash == nil {
		prevHash = genesis[:]
	}
	e.Time = e.Time.UTC().Truncate(TimePrecision)
	e.Seq = prevSeq + 1
	e.PrevHash = bytes.Clone(prevHash)
	e.Hash = Hash(e.PrevHash, e)
}

// CheckpointMessage returns the bytes a checkpoint signs: the domain tag
// "custos-audit-checkpoint-v1", seq, the chain hash at seq and the time the
// checkpoint was made (UTC, RFC 3339 with nanoseconds), each length-prefixed.
// The tag keeps the checkpoint key's signatures from being replayed as
// anything else.
func CheckpointMessage(seq int64, hash []byte, t time.Time) []byte {
	b := make([]byte, 0, 8+len(checkpointDomain)+8+8+len(hash)+8+40)
	b = appendBytes(b, []byte(checkpointDomain))
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = appendBytes(b, hash)
	return appendTime(b, t)
}

// SignCheckpoint returns a checkpoint of the chain head (seq, hash) at t,
// signed with priv. keyID names the key for rotation; it is not signed.
func SignCheckpoint(priv ed25519.PrivateKey, keyID string, seq int64, hash []byte, t time.Time) *custos.AuditCheckpoint {
	t = t.UTC().Truncate(TimePrecision)
	return &custos.AuditCheckpoint{
		Seq:       seq,
		Hash:      bytes.Clone(hash),
		Time:      t,
		KeyID:     keyID,
		Signature: ed25519.Sign(priv, CheckpointMessage(seq, hash, t)),
	}
}

// VerifyCheckpoint reports whether cp carries a valid signature under pub.
// It returns false, and does not panic, for a public key of the wrong size.
func VerifyCheckpoint(pub ed25519.PublicKey, cp *custos.AuditCheckpoint) bool {
	if len(pub) != ed25519.PublicKeySize || cp == nil {
		return false
	}
	return ed25519.Verify(pub, CheckpointMessage(cp.Seq, cp.Hash, cp.Time), cp.Signature)
}
