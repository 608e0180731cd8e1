//go:build !race

// The race detector's instrumentation moves values to the heap that a
// normal build keeps on the stack, so allocation counts hold only
// without it.

package policy_test

import (
	"testing"

	"custos"
	"custos/policy"
)

// TestDecideAllocations: a decision naming no field, record or grant
// allocates its fields map and nothing else (with Records and Grants made
// for every decision it was three).
func TestDecideAllocations(t *testing.T) {
	cat := custos.DefaultCatalog()
	req := policy.Request{Principal: &custos.Principal{ID: "prn_x", Roles: []string{"marketing"}},
		Action: custos.ActSubjectRead, Purposes: []string{"marketing"}}
	if n := testing.AllocsPerRun(100, func() { policy.Decide(cat, req) }); n > 1 {
		t.Errorf("a decision naming no field: %.0f allocations, want at most 1", n)
	}
}
