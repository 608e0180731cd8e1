package seed

import "testing"

// xorshift is a fixed stream of 64-bit values for the filter tests.
type xorshift uint64

func (x *xorshift) next() uint64 {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	return uint64(*x)
}

// TestSeen: every value added is seen again (no false negatives, across
// the layers the filter grows), values never added are rarely taken for
// seen, and the memory stays near 20 bits a value.
func TestSeen(t *testing.T) {
	const n = 1_000_000
	var s seen
	x := xorshift(88172645463325252)
	added := make([]uint64, n)
	for i := range added {
		added[i] = x.next()
		s.addIfNew(added[i]) // a false "seen" here is allowed: the generator draws again
	}
	if len(s.layers) < 4 {
		t.Fatalf("%d values in %d layers: the filter did not grow", n, len(s.layers))
	}
	for i, h := range added {
		if s.addIfNew(h) {
			t.Fatalf("value %d of %d added again: a false negative", i, n)
		}
	}
	falsePos := 0
	y := xorshift(0x9e3779b97f4a7c15) // another stream: values never added
	for range n {
		if !s.addIfNew(y.next()) {
			falsePos++
		}
	}
	// About 0.1 % is the design; well above it means too few bits or probes.
	if rate := float64(falsePos) / n; rate > 0.003 {
		t.Errorf("false-positive rate %.4f %%, want under 0.3 %%", rate*100)
	}
	// 2n values are in now.
	if bits := float64(s.bytes()*8) / (2 * n); bits > 24 {
		t.Errorf("%.1f bits a value, want at most 24", bits)
	}
	t.Logf("%d layers, %.2f MB, %d false positives in %d", len(s.layers), float64(s.bytes())/1e6, falsePos, n)
}
