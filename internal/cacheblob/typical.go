package cacheblob

import (
	"fmt"
	"time"

	"custos"
)

// Typical is what a read cache keeps of a customer shaped as custos
// bench's synthetic ones: twelve sealed fields of about 60 bytes of
// ciphertext, a wrapped data key and one consent for each of purposes.
// For the read caches' tests and benchmarks.
func Typical(id custos.SubjectID, i int, purposes ...string) (*custos.StoredSubject, *custos.DataKey, []*custos.StoredConsent) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	st := &custos.StoredSubject{ID: id, Sealed: map[string][]byte{}, CreatedAt: now, UpdatedAt: now}
	for _, f := range []string{"name", "mobile", "email", "id_number", "address", "birth_date",
		"gender", "member_no", "city", "postcode", "tier", "_provenance"} {
		st.Sealed[f] = make([]byte, 60)
	}
	key := &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: make([]byte, 60), CreatedAt: now}
	var history []*custos.StoredConsent
	for j, p := range purposes {
		history = append(history, &custos.StoredConsent{Seq: int64(i), ID: fmt.Sprintf("con_%d_%d", i, j),
			SubjectID: id, Purpose: p, Scope: "all", Action: custos.ConsentGranted, NoticeVersion: 1, At: now,
			Channel: "app", InitiatedBy: "subject", ActorID: "prn_app"})
	}
	return st, key, history
}
