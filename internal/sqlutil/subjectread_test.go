package sqlutil

import (
	"slices"
	"testing"

	"custos"
)

// TestSubjectReadsConsentsOf: a SubjectRead whose consents come from
// ConsentsOf (a read cache's entry) is asked for the purposes of each
// ListConsentsFor, and a later Keep of the same subject replaces what an
// earlier one kept, whichever form either had.
func TestSubjectReadsConsentsOf(t *testing.T) {
	id := custos.SubjectID("sub-1")
	st := &custos.StoredSubject{ID: id}
	history := []*custos.StoredConsent{{Seq: 1, Purpose: "marketing"}, {Seq: 2, Purpose: "analytics"}}
	var asked [][]string
	lazy := &SubjectRead{Subject: st, ConsentsOf: func(purposes []string) []*custos.StoredConsent {
		asked = append(asked, purposes)
		return []*custos.StoredConsent{{Seq: 9, Purpose: purposes[0]}}
	}}
	eager := &SubjectRead{Subject: st, Consents: history}

	var s SubjectReads
	if _, ok := s.ConsentsFor(id, []string{"marketing"}); ok {
		t.Fatal("ConsentsFor before any Keep: ok, want none kept")
	}
	s.Keep(lazy)
	got, ok := s.ConsentsFor(id, []string{"analytics", "marketing"})
	if !ok || len(got) != 1 || got[0].Seq != 9 || len(asked) != 1 || !slices.Equal(asked[0], []string{"analytics", "marketing"}) {
		t.Errorf("lazy: got %+v, %v, ConsentsOf asked %v; want its answer for the purposes asked", got, ok, asked)
	}

	s.Keep(eager) // read again, from the database
	got, ok = s.ConsentsFor(id, []string{"analytics"})
	if !ok || len(got) != 1 || got[0].Seq != 2 || len(asked) != 1 {
		t.Errorf("after an eager Keep: got %+v, %v (ConsentsOf asked %d times); want the kept history's analytics consent, ConsentsOf not asked again", got, ok, len(asked))
	}
	if got[0] == history[1] {
		t.Error("ConsentsFor returned the kept consent itself, want a copy")
	}

	s.Keep(lazy)
	if got, ok = s.ConsentsFor(id, []string{"marketing"}); !ok || len(got) != 1 || got[0].Seq != 9 || len(asked) != 2 {
		t.Errorf("after a lazy Keep again: got %+v, %v; want ConsentsOf's answer", got, ok)
	}
}
