package audit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/audit"
)

var base = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)

// newEvent returns an unchained event i with realistic contents.
func newEvent(i int) *custos.AuditEvent {
	actions := []string{custos.AuditSubjectRead, custos.AuditSubjectCreate, custos.AuditRecordRead, custos.AuditSubjectLookup}
	e := &custos.AuditEvent{
		Time:      base.Add(time.Duration(i) * time.Minute),
		ActorID:   custos.PrincipalID(fmt.Sprintf("prn_staff%03d", i%7)),
		Action:    actions[i%len(actions)],
		SubjectID: custos.SubjectID(fmt.Sprintf("sub_%026d", i)),
		Fields:    []string{"name", "mobile"},
		Purposes:  []string{"customer-service"},
		Decision:  custos.DecisionAllow,
		RequestID: fmt.Sprintf("req_%d", i),
	}
	if i%5 == 0 {
		e.Decision, e.Reason = custos.DecisionDeny, "no_consent"
	}
	return e
}

// buildChain returns n chained events.
func buildChain(n int) []*custos.AuditEvent {
	evs := make([]*custos.AuditEvent, 0, n)
	var seq int64
	var prev []byte
	for i := range n {
		e := newEvent(i)
		audit.Chain(seq, prev, e)
		seq, prev = e.Seq, e.Hash
		evs = append(evs, e)
	}
	return evs
}

// sign returns checkpoints of evs at each seq in at.
func sign(priv ed25519.PrivateKey, evs []*custos.AuditEvent, at ...int64) []*custos.AuditCheckpoint {
	var cps []*custos.AuditCheckpoint
	for _, s := range at {
		e := evs[s-1]
		cps = append(cps, audit.SignCheckpoint(priv, "k1", e.Seq, e.Hash, e.Time.Add(time.Second)))
	}
	return cps
}

func mustKey(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

func cloneEvents(evs []*custos.AuditEvent) []*custos.AuditEvent {
	out := make([]*custos.AuditEvent, len(evs))
	for i, e := range evs {
		c := *e
		c.Fields = slices.Clone(e.Fields)
		c.Purposes = slices.Clone(e.Purposes)
		c.PrevHash = bytes.Clone(e.PrevHash)
		c.Hash = bytes.Clone(e.Hash)
		out[i] = &c
	}
	return out
}

func cloneCheckpoints(cps []*custos.AuditCheckpoint) []*custos.AuditCheckpoint {
	out := make([]*custos.AuditCheckpoint, len(cps))
	for i, cp := range cps {
		c := *cp
		c.Hash = bytes.Clone(cp.Hash)
		c.Signature = bytes.Clone(cp.Signature)
		out[i] = &c
	}
	return out
}

// seqOf returns the event stored with seq s.
func seqOf(evs []*custos.AuditEvent, s int64) *custos.AuditEvent {
	for _, e := range evs {
		if e.Seq == s {
			return e
		}
	}
	panic(fmt.Sprintf("no event %d", s))
}

// sorted returns evs in stored order, as a query ordered by seq would.
func sorted(evs []*custos.AuditEvent) []*custos.AuditEvent {
	slices.SortStableFunc(evs, func(a, b *custos.AuditEvent) int {
		return int(a.Seq - b.Seq)
	})
	return evs
}

// renumber sets consecutive seqs from index i on, as an attacker hiding a
// gap would, without touching hashes.
func renumber(evs []*custos.AuditEvent, i int) []*custos.AuditEvent {
	for ; i < len(evs); i++ {
		evs[i].Seq = int64(i + 1)
	}
	return evs
}

// rechain recomputes every hash from index i on, as an attacker with the
// code but not the checkpoint key would.
func rechain(evs []*custos.AuditEvent, i int) []*custos.AuditEvent {
	var seq int64
	var prev []byte
	if i > 0 {
		seq, prev = evs[i-1].Seq, evs[i-1].Hash
	}
	for ; i < len(evs); i++ {
		audit.Chain(seq, prev, evs[i])
		seq, prev = evs[i].Seq, evs[i].Hash
	}
	return evs
}

func forged(seq int64) *custos.AuditEvent {
	return &custos.AuditEvent{
		Seq:       seq,
		Time:      base.Add(time.Hour),
		ActorID:   "prn_attacker",
		Action:    custos.AuditSubjectRead,
		SubjectID: "sub_victim",
		Decision:  custos.DecisionAllow,
	}
}

func insertAt(evs []*custos.AuditEvent, i int, e ...*custos.AuditEvent) []*custos.AuditEvent {
	return slices.Insert(evs, i, e...)
}

func seqOfSlice(evs []*custos.AuditEvent) audit.Events {
	return func(yield func(*custos.AuditEvent, error) bool) {
		for _, e := range evs {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// TestVerify applies, one at a time, each move an attacker with write
// access to the database can make, and checks that Verify names the first
// bad event and the kind of tampering (S5).
func TestVerify(t *testing.T) {
	pub, priv := mustKey(t)
	_, otherPriv := mustKey(t)
	chain := buildChain(50)
	cps := sign(priv, chain, 10, 20, 30, 40, 50)

	type tamper func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint)
	tests := []struct {
		name   string
		tamper tamper
		kind   string // "" means OK
		seq    int64
	}{
		{"untouched", nil, "", 0},
		{"edit a value and leave the hashes", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[16].Action = custos.AuditSubjectErase
			return evs, cps
		}, audit.KindAltered, 17},
		{"edit the fields list and leave the hashes", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[16].Fields = []string{"name"}
			return evs, cps
		}, audit.KindAltered, 17},
		{"edit the time and leave the hashes", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[0].Time = evs[0].Time.Add(-time.Hour)
			return evs, cps
		}, audit.KindAltered, 1},
		{"edit a value and recompute that event's hash", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			e := evs[16]
			e.Decision = custos.DecisionAllow
			e.Reason = ""
			e.ActorID = "prn_someone_else"
			e.Hash = audit.Hash(e.PrevHash, e)
			return evs, cps
		}, audit.KindAltered, 17},
		{"edit the first event and recompute its hash", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			e := evs[0]
			e.ActorID = "prn_someone_else"
			e.Hash = audit.Hash(e.PrevHash, e)
			return evs, cps
		}, audit.KindAltered, 1},
		{"edit an event at a checkpoint and recompute its hash", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			e := evs[19]
			e.ActorID = "prn_someone_else"
			e.Hash = audit.Hash(e.PrevHash, e)
			return evs, cps
		}, audit.KindAltered, 20},
		{"edit an event's prev hash", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[21].PrevHash[0] ^= 1
			return evs, cps
		}, audit.KindAltered, 22},
		{"delete an event", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return slices.Delete(evs, 24, 25), cps
		}, audit.KindRemoved, 25},
		{"delete three events", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return slices.Delete(evs, 24, 27), cps
		}, audit.KindRemoved, 25},
		{"delete the first event", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return evs[1:], cps
		}, audit.KindRemoved, 1},
		{"delete an event and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return renumber(slices.Delete(evs, 24, 25), 24), cps
		}, audit.KindRemoved, 25},
		{"delete two events and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return renumber(slices.Delete(evs, 24, 26), 24), cps
		}, audit.KindRemoved, 25},
		{"delete the first event and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return renumber(evs[1:], 0), cps
		}, audit.KindRemoved, 1},
		{"insert a forged event chained in and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(0)
			audit.Chain(evs[23].Seq, evs[23].Hash, f)
			return renumber(insertAt(evs, 24, f), 25), cps
		}, audit.KindInserted, 25},
		{"insert two forged events chained in and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f1, f2 := forged(0), forged(0)
			audit.Chain(evs[23].Seq, evs[23].Hash, f1)
			audit.Chain(f1.Seq, f1.Hash, f2)
			return renumber(insertAt(evs, 24, f1, f2), 26), cps
		}, audit.KindInserted, 25},
		{"insert a forged event at the start and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(0)
			audit.Chain(0, nil, f)
			return renumber(insertAt(evs, 0, f), 1), cps
		}, audit.KindInserted, 1},
		{"insert a forged event with a made-up prev hash and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(25)
			f.PrevHash = bytes.Repeat([]byte{7}, 32)
			f.Hash = bytes.Repeat([]byte{9}, 32)
			return renumber(insertAt(evs, 24, f), 25), cps
		}, audit.KindInserted, 25},
		{"insert a self-consistent forged event and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(25)
			f.PrevHash = bytes.Repeat([]byte{7}, 32)
			f.Hash = audit.Hash(f.PrevHash, f)
			return renumber(insertAt(evs, 24, f), 25), cps
		}, audit.KindInserted, 25},
		{"insert a copy of an earlier event and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			c := *evs[9]
			return renumber(insertAt(evs, 24, &c), 24), cps
		}, audit.KindInserted, 25},
		{"insert a copy of a later event and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			c := *evs[44]
			return renumber(insertAt(evs, 24, &c), 24), cps
		}, audit.KindInserted, 25},
		{"insert a forged event under an existing seq", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(0)
			audit.Chain(evs[28].Seq, evs[28].Hash, f)
			return sorted(insertAt(evs, 30, f)), cps
		}, audit.KindInserted, 30},
		{"append a forged event that does not link", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(51)
			f.PrevHash = bytes.Repeat([]byte{7}, 32)
			f.Hash = bytes.Repeat([]byte{9}, 32)
			return append(evs, f), cps
		}, audit.KindInserted, 51},
		{"append a self-consistent forged event after a checkpoint", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			f := forged(51)
			f.PrevHash = bytes.Repeat([]byte{7}, 32)
			f.Hash = audit.Hash(f.PrevHash, f)
			return append(evs, f), cps
		}, audit.KindInserted, 51},
		{"swap two events' seq numbers", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[19].Seq, evs[29].Seq = evs[29].Seq, evs[19].Seq
			return sorted(evs), cps
		}, audit.KindReordered, 20},
		{"swap two adjacent events' seq numbers", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[32].Seq, evs[33].Seq = evs[33].Seq, evs[32].Seq
			return sorted(evs), cps
		}, audit.KindReordered, 33},
		{"swap the first two events' seq numbers", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[0].Seq, evs[1].Seq = evs[1].Seq, evs[0].Seq
			return sorted(evs), cps
		}, audit.KindReordered, 1},
		{"move an event to the end and renumber", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			e := evs[11]
			return renumber(append(slices.Delete(evs, 11, 12), e), 11), cps
		}, audit.KindReordered, 12},
		{"edit an event and recompute the whole chain", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs[14].Action = custos.AuditSubjectErase
			return rechain(evs, 14), cps
		}, audit.KindAltered, 20},
		{"delete an event and recompute the whole chain", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return rechain(slices.Delete(evs, 34, 35), 34), cps
		}, audit.KindAltered, 40},
		{"edit the last event and recompute its hash", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			e := evs[49]
			e.ActorID = "prn_someone_else"
			e.Hash = audit.Hash(e.PrevHash, e)
			return evs, cps
		}, audit.KindAltered, 50},
		{"truncate the tail", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return evs[:45], cps
		}, audit.KindTruncated, 46},
		{"truncate the tail to a checkpoint", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return evs[:40], cps
		}, audit.KindTruncated, 41},
		{"truncate everything", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return nil, cps
		}, audit.KindTruncated, 1},
		{"truncate and append a forged tail", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			evs = evs[:45]
			for range 5 {
				f := forged(0)
				audit.Chain(evs[len(evs)-1].Seq, evs[len(evs)-1].Hash, f)
				evs = append(evs, f)
			}
			return evs, cps
		}, audit.KindAltered, 50},
		{"bad checkpoint signature", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[2].Signature[0] ^= 1
			return evs, cps
		}, audit.KindCheckpoint, 30},
		{"checkpoint hash changed", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[1].Hash[0] ^= 1
			return evs, cps
		}, audit.KindCheckpoint, 20},
		{"checkpoint moved to another seq", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[1].Seq = 21
			cps[1].Hash = bytes.Clone(evs[20].Hash)
			return evs, cps
		}, audit.KindCheckpoint, 21},
		{"checkpoint signed by another key", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[3] = sign(otherPriv, evs, 40)[0]
			return evs, cps
		}, audit.KindCheckpoint, 40},
		{"forged checkpoint past the end", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			return evs, append(cps, &custos.AuditCheckpoint{Seq: 60, Hash: make([]byte, 32), Signature: make([]byte, 64)})
		}, audit.KindCheckpoint, 60},
		{"first problem wins", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[4].Signature[0] ^= 1
			evs[4].Reason = "edited"
			return slices.Delete(evs, 29, 30), cps
		}, audit.KindAltered, 5},
		{"chain break before a bad signature", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[3].Signature[0] ^= 1
			evs[34].Seq, evs[36].Seq = evs[36].Seq, evs[34].Seq
			return sorted(evs), cps
		}, audit.KindReordered, 35},
		{"bad signature before a chain break", func(evs []*custos.AuditEvent, cps []*custos.AuditCheckpoint) ([]*custos.AuditEvent, []*custos.AuditCheckpoint) {
			cps[0].Signature[0] ^= 1
			evs[34].Seq, evs[36].Seq = evs[36].Seq, evs[34].Seq
			return sorted(evs), cps
		}, audit.KindCheckpoint, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, cps := cloneEvents(chain), cloneCheckpoints(cps)
			if tt.tamper != nil {
				evs, cps = tt.tamper(evs, cps)
			}
			r := audit.Verify(seqOfSlice(evs), cps, pub)
			if r.Err != nil {
				t.Fatalf("Err = %v", r.Err)
			}
			if tt.kind == "" {
				if !r.OK || r.Problem != nil {
					t.Fatalf("got OK %v problem %+v, want OK", r.OK, r.Problem)
				}
				return
			}
			if r.OK || r.Problem == nil {
				t.Fatalf("got OK, want %s at %d", tt.kind, tt.seq)
			}
			if r.Problem.Kind != tt.kind || r.Problem.Seq != tt.seq {
				t.Errorf("got %s at %d (%s), want %s at %d", r.Problem.Kind, r.Problem.Seq, r.Problem.Detail, tt.kind, tt.seq)
			}
			if r.Problem.Detail == "" {
				t.Error("got empty detail")
			}
		})
	}
}

func TestVerifyCounts(t *testing.T) {
	pub, priv := mustKey(t)
	chain := buildChain(50)
	cps := sign(priv, chain, 10, 20, 30, 40, 50)

	r := audit.Verify(seqOfSlice(chain), cps, pub)
	if !r.OK || r.Events != 50 || r.Checkpoints != 5 {
		t.Errorf("got OK %v events %d checkpoints %d, want true 50 5", r.OK, r.Events, r.Checkpoints)
	}

	// Reading stops at a settled problem: nothing after event 17 is read.
	evs := cloneEvents(chain)
	evs[16].Action = "edited"
	r = audit.Verify(seqOfSlice(evs), cps, pub)
	if r.Events != 17 || r.Checkpoints != 1 {
		t.Errorf("got events %d checkpoints %d, want 17 1", r.Events, r.Checkpoints)
	}
}

func TestVerifyEmpty(t *testing.T) {
	pub, _ := mustKey(t)
	tests := []struct {
		name string
		pub  ed25519.PublicKey
	}{
		{"with key", pub},
		{"without key", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := audit.Verify(seqOfSlice(nil), nil, tt.pub)
			if !r.OK || r.Events != 0 {
				t.Errorf("got OK %v events %d, want true 0", r.OK, r.Events)
			}
		})
	}
}

func TestVerifyNoPublicKey(t *testing.T) {
	_, priv := mustKey(t)
	chain := buildChain(20)
	r := audit.Verify(seqOfSlice(chain), sign(priv, chain, 10, 20), nil)
	if r.OK || r.Problem == nil || r.Problem.Kind != audit.KindCheckpoint || r.Problem.Seq != 10 {
		t.Errorf("got OK %v problem %+v, want checkpoint at 10", r.OK, r.Problem)
	}
}

func TestVerifyReadError(t *testing.T) {
	pub, _ := mustKey(t)
	chain := buildChain(10)
	boom := errors.New("disk on fire")
	events := func(yield func(*custos.AuditEvent, error) bool) {
		for _, e := range chain[:5] {
			if !yield(e, nil) {
				return
			}
		}
		yield(nil, boom)
	}
	r := audit.Verify(events, nil, pub)
	if r.OK || !errors.Is(r.Err, boom) || r.Events != 5 {
		t.Errorf("got OK %v err %v events %d, want false %v 5", r.OK, r.Err, r.Events, boom)
	}

	nilEvent := func(yield func(*custos.AuditEvent, error) bool) { yield(nil, nil) }
	if r := audit.Verify(nilEvent, nil, pub); r.OK || !errors.Is(r.Err, audit.ErrNilEvent) {
		t.Errorf("got OK %v err %v, want ErrNilEvent", r.OK, r.Err)
	}
}

// TestVerifier feeds the streaming form in pages and gets the same report
// as Verify.
func TestVerifier(t *testing.T) {
	pub, priv := mustKey(t)
	chain := buildChain(50)
	cps := sign(priv, chain, 10, 20, 30, 40, 50)
	evs := cloneEvents(chain)
	evs[19].Seq, evs[29].Seq = evs[29].Seq, evs[19].Seq
	evs = sorted(evs)

	v := audit.NewVerifier(cps, pub)
	more := true
	for page := 0; more && page*7 < len(evs); page++ {
		for _, e := range evs[page*7 : min(len(evs), page*7+7)] {
			if more = v.Add(e); !more {
				break
			}
		}
	}
	got := v.Finish(nil)
	want := audit.Verify(seqOfSlice(evs), cps, pub)
	if *got.Problem != *want.Problem || got.Events != want.Events {
		t.Errorf("got %+v %d, want %+v %d", got.Problem, got.Events, want.Problem, want.Events)
	}
	if want.Problem.Kind != audit.KindReordered || want.Problem.Seq != 20 {
		t.Errorf("got %+v, want reordered at 20", want.Problem)
	}
	if !strings.Contains(want.Problem.Detail, "seq 30") {
		t.Errorf("got detail %q, want it to name seq 30", want.Problem.Detail)
	}
}

// TestHashEncoding checks that the encoding is unambiguous: events that
// differ in any field, or only in how parts split, hash differently.
func TestHashEncoding(t *testing.T) {
	prev := bytes.Repeat([]byte{1}, 32)
	ref := newEvent(3)
	ref.Seq = 4
	refHash := audit.Hash(prev, ref)

	tests := []struct {
		name string
		edit func(e *custos.AuditEvent)
		same bool
	}{
		{"seq", func(e *custos.AuditEvent) { e.Seq++ }, false},
		{"time", func(e *custos.AuditEvent) { e.Time = e.Time.Add(time.Nanosecond) }, false},
		{"time in another zone", func(e *custos.AuditEvent) { e.Time = e.Time.In(time.FixedZone("CST", 8*3600)) }, true},
		{"actor", func(e *custos.AuditEvent) { e.ActorID += "x" }, false},
		{"action", func(e *custos.AuditEvent) { e.Action += "x" }, false},
		{"subject", func(e *custos.AuditEvent) { e.SubjectID = "" }, false},
		{"fields split differently", func(e *custos.AuditEvent) { e.Fields = []string{"namemobile"} }, false},
		{"fields reordered", func(e *custos.AuditEvent) { e.Fields = []string{"mobile", "name"} }, false},
		{"field moved to purposes", func(e *custos.AuditEvent) {
			e.Fields = []string{"name"}
			e.Purposes = []string{"mobile", "customer-service"}
		}, false},
		{"purposes", func(e *custos.AuditEvent) { e.Purposes = nil }, false},
		{"decision", func(e *custos.AuditEvent) { e.Decision = custos.DecisionDeny }, false},
		{"text moved between reason and request id", func(e *custos.AuditEvent) {
			e.Reason, e.RequestID = e.Reason+"r", e.RequestID[1:]
		}, false},
		{"hash fields ignored", func(e *custos.AuditEvent) { e.Hash, e.PrevHash = []byte{1}, []byte{2} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := cloneEvents([]*custos.AuditEvent{ref})[0]
			tt.edit(e)
			got := bytes.Equal(audit.Hash(prev, e), refHash)
			if got != tt.same {
				t.Errorf("got same hash %v, want %v", got, tt.same)
			}
		})
	}

	empty, none := newEvent(1), newEvent(1)
	empty.Fields, none.Fields = []string{}, nil
	if !bytes.Equal(audit.Hash(prev, empty), audit.Hash(prev, none)) {
		t.Error("nil and empty field lists hash differently")
	}
	if bytes.Equal(audit.Hash(prev, ref), audit.Hash(audit.Genesis, ref)) {
		t.Error("prev hash is not covered")
	}
}

func TestChain(t *testing.T) {
	e := newEvent(1)
	e.Time = time.Date(2026, 3, 1, 17, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	audit.Chain(0, nil, e)
	if e.Seq != 1 || !bytes.Equal(e.PrevHash, audit.Genesis) || len(e.Hash) != 32 {
		t.Fatalf("got seq %d prev %x hash len %d, want 1, genesis, 32", e.Seq, e.PrevHash, len(e.Hash))
	}
	if want := time.Date(2026, 3, 1, 9, 0, 0, 123456000, time.UTC); !e.Time.Equal(want) || e.Time.Location() != time.UTC {
		t.Errorf("got time %v, want %v", e.Time, want)
	}
	if !bytes.Equal(e.Hash, audit.Hash(audit.Genesis, e)) {
		t.Error("hash does not recompute")
	}
	f := newEvent(2)
	audit.Chain(e.Seq, e.Hash, f)
	if f.Seq != 2 || !bytes.Equal(f.PrevHash, e.Hash) {
		t.Errorf("got seq %d prev %x, want 2 %x", f.Seq, f.PrevHash, e.Hash)
	}
	e.Hash[0] ^= 1
	if bytes.Equal(f.PrevHash, e.Hash) {
		t.Error("Chain aliases the caller's prev hash")
	}
}

func TestCheckpointMessage(t *testing.T) {
	h := bytes.Repeat([]byte{3}, 32)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	m := audit.CheckpointMessage(10, h, at)
	if !bytes.Contains(m, []byte("custos-audit-checkpoint-v1")) {
		t.Error("message lacks the domain tag")
	}
	tests := []struct {
		name string
		msg  []byte
	}{
		{"seq", audit.CheckpointMessage(11, h, at)},
		{"hash", audit.CheckpointMessage(10, h[1:], at)},
		{"time", audit.CheckpointMessage(10, h, at.Add(time.Microsecond))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.msg, m) {
				t.Error("got the same message, want a different one")
			}
		})
	}
	if !bytes.Equal(m, audit.CheckpointMessage(10, h, at.In(time.FixedZone("CST", 8*3600)))) {
		t.Error("message depends on the time zone")
	}
}

func BenchmarkHash(b *testing.B) {
	e := newEvent(1)
	audit.Chain(0, nil, e)
	b.ReportAllocs()
	for b.Loop() {
		audit.Hash(e.PrevHash, e)
	}
}

func BenchmarkVerify(b *testing.B) {
	pub, priv := mustKey(b)
	chain := buildChain(10_000)
	var at []int64
	for s := int64(1000); s <= 10_000; s += 1000 {
		at = append(at, s)
	}
	cps := sign(priv, chain, at...)
	b.ReportAllocs()
	for b.Loop() {
		if r := audit.Verify(seqOfSlice(chain), cps, pub); !r.OK {
			b.Fatalf("got %+v", r.Problem)
		}
	}
}

// TestVerifyFarReorder swaps two events further apart than SearchRadius:
// the seq an event was written with is then found through the events after
// it.
func TestVerifyFarReorder(t *testing.T) {
	if testing.Short() {
		t.Skip("long chain")
	}
	pub, _ := mustKey(t)
	evs := buildChain(audit.SearchRadius + 100)
	far := audit.SearchRadius + 50
	evs[1].Seq, evs[far-1].Seq = evs[far-1].Seq, evs[1].Seq
	r := audit.Verify(seqOfSlice(sorted(evs)), nil, pub)
	if r.Problem == nil || r.Problem.Kind != audit.KindReordered || r.Problem.Seq != 2 {
		t.Errorf("got %+v, want reordered at 2", r.Problem)
	}
}

// BenchmarkChain links one event after the previous one, as core's audit
// append does once per request (S5): normalise the time, copy the prev
// hash, hash the canonical encoding.
func BenchmarkChain(b *testing.B) {
	prev := newEvent(1)
	audit.Chain(0, nil, prev)
	e := newEvent(2)
	b.ReportAllocs()
	for b.Loop() {
		audit.Chain(prev.Seq, prev.Hash, e)
	}
}

// TestHashParts: HashPrefix and Tail put together as their comment says
// give Hash, for the genesis and a chained head, empty and full events,
// so that a store hashing on its server (PostgreSQL) hashes alike.
func TestHashParts(t *testing.T) {
	head := sha256.Sum256([]byte("head"))
	events := []*custos.AuditEvent{
		{Seq: 1, Time: time.Unix(1700000000, 123456000).UTC()},
		{Seq: 1 << 40, Time: time.Date(2026, 12, 4, 14, 0, 0, 1000, time.UTC), ActorID: "prn_a", Action: custos.AuditSubjectRead,
			SubjectID: "sub_x", Fields: []string{"mobile", "name"}, Purposes: []string{"account"}, Decision: custos.DecisionAllow,
			Reason: "r", RequestID: "req_1"},
	}
	for _, prev := range [][]byte{audit.Genesis, head[:]} {
		for i, e := range events {
			var b []byte
			b = append(b, audit.HashPrefix()...)
			b = binary.BigEndian.AppendUint64(b, uint64(len(prev)))
			b = append(b, prev...)
			b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
			b = append(b, audit.Tail(e)...)
			if got, want := sha256.Sum256(b), audit.Hash(prev, e); !bytes.Equal(got[:], want) {
				t.Errorf("event %d after %x: parts hash to %x, Hash gives %x", i, prev[:4], got, want)
			}
		}
	}
}
