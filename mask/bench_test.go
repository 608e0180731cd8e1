package mask_test

import (
	"testing"

	"custos"
	"custos/mask"
)

// benchValues holds one typical valid value per rule, as a normalised
// field value reaches mask.Apply on a masked read.
var benchValues = map[string]string{
	mask.None:            "M-200123",
	mask.Full:            "correct horse battery staple",
	mask.Name:            "欧阳小明",
	mask.Mobile:          "13812345678",
	mask.ResidentID:      "11010519491231002X",
	mask.ResidentIDShort: "11010519491231002X",
	mask.First1Last1:     "E12345678",
	mask.First4:          "a1b2c3d4e5f6a7b8",
	mask.Last4:           "010-62345678",
	mask.BankCard:        "6222020200112340128",
	mask.Address:         "北京市朝阳区建国路88号SOHO现代城3号楼1201",
	mask.Email:           "zhang.san@example.com",
	mask.IP:              "192.168.10.24",
	mask.DateYear:        "1990-07-15",
}

// BenchmarkApply masks one value under every rule (RULES.md 脱敏展示).
func BenchmarkApply(b *testing.B) {
	for _, rule := range mask.Rules() {
		v, ok := benchValues[rule]
		if !ok {
			b.Fatalf("no bench value for rule %q", rule)
		}
		b.Run(rule, func(b *testing.B) {
			if rule != mask.None && mask.Apply(rule, v) == v {
				b.Fatalf("%s: value came back unmasked", rule)
			}
			b.ReportAllocs()
			for b.Loop() {
				mask.Apply(rule, v)
			}
		})
	}
}

// BenchmarkApplyCatalog masks every field of the default catalog that has a
// bench value under its catalog rule: the masking a whole masked subject
// costs.
func BenchmarkApplyCatalog(b *testing.B) {
	cat := custos.DefaultCatalog()
	type fv struct{ rule, value string }
	var in []fv
	for _, f := range cat.Fields {
		if v, ok := benchValues[f.Mask]; ok {
			in = append(in, fv{f.Mask, v})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, x := range in {
			mask.Apply(x.rule, x.value)
		}
	}
}
