package core_test

import (
	"fmt"
	"testing"

	"custos"
)

// BenchmarkCreateSubjectPlan measures what requiring a collection plan
// (C2) adds to a create: one read transaction listing the approved plans
// of the declared purposes.
func BenchmarkCreateSubjectPlan(b *testing.B) {
	for _, require := range []bool{false, true} {
		b.Run(fmt.Sprintf("require=%v", require), func(b *testing.B) {
			e := newEnv(b)
			committee, _ := e.as(b, custos.KindService, "committee")
			p := accountPlan()
			if err := e.svc.FilePlan(e.admin, p); err != nil {
				b.Fatal(err)
			}
			if _, err := e.svc.ReviewPlan(committee, p.ID, custos.Review{Approve: true, Reason: "bench"}); err != nil {
				b.Fatal(err)
			}
			e.svc.RequirePlan = require
			b.ResetTimer()
			for i := range b.N {
				in := custos.NewSubject{Fields: map[string]string{"name": "张三", "mobile": fmt.Sprintf("139%08d", i)}, Provenance: prov}
				if _, err := e.svc.CreateSubject(e.admin, []string{"account"}, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
