package seed

import (
	"math"
	"math/bits"
)

// seen is the set of values a Generator has handed out, as a scalable
// Bloom filter over their 64-bit hashes (Almeida et al., "Scalable Bloom
// Filters", 2007).
//
// A Bloom filter answers "maybe seen" for every value added and, rarely,
// for one that was not; never "not seen" for one that was. The Generator
// draws again on "maybe", so values stay unique and the output stays
// deterministic; a false "maybe" costs one more draw. The filter grows in
// layers, each twice the capacity of the one before and with a lower
// false-positive rate, so the overall rate stays under about 0.1 % however
// many values are added. A full layer takes about 20 bits a value; with
// the room the newest layer keeps free, a 10-million-customer seed (53
// million values) needs 180 MB and a 1-million one 21 MB, where a Go map
// of the hashes took 1.2 GB and 144 MB (BENCHMARKS.md, fifth session).
type seen struct {
	layers []*bloomLayer
}

const (
	firstLayerCap = 1 << 16 // values in the first layer
	firstLayerFP  = 0.0002  // its false-positive rate
	layerFPRatio  = 0.8     // each next layer's rate, relative to the one before
)

// bloomLayer is one fixed-size Bloom filter of m = len(bits)*64 bits
// probed k times per value.
type bloomLayer struct {
	bits  []uint64
	m     uint64
	k     int
	n     int // values added
	limit int // values it takes before the next layer starts
}

func newBloomLayer(capacity int, fp float64) *bloomLayer {
	// m = -n ln p / (ln 2)², in whole words; k = m/n ln 2.
	words := uint64(math.Ceil(-float64(capacity) * math.Log(fp) / (math.Ln2 * math.Ln2) / 64))
	m := max(words, 1) * 64
	k := max(int(math.Round(float64(m)/float64(capacity)*math.Ln2)), 1)
	return &bloomLayer{bits: make([]uint64, m/64), m: m, k: k, limit: capacity}
}

// probes calls f with the k bit positions of h, until f returns false:
// double hashing (Kirsch and Mitzenmacher) of two mixes of h, each probe
// mapped onto [0, m) by a multiply (Lemire's reduction).
func (l *bloomLayer) probes(h uint64, f func(pos uint64) bool) bool {
	a, b := mix64(h), mix64(h^0x9e3779b97f4a7c15)|1
	for i := 0; i < l.k; i++ {
		pos, _ := bits.Mul64(a+uint64(i)*b, l.m)
		if !f(pos) {
			return false
		}
	}
	return true
}

func (l *bloomLayer) has(h uint64) bool {
	return l.probes(h, func(p uint64) bool { return l.bits[p/64]&(1<<(p%64)) != 0 })
}

func (l *bloomLayer) add(h uint64) {
	l.probes(h, func(p uint64) bool { l.bits[p/64] |= 1 << (p % 64); return true })
	l.n++
}

// addIfNew adds h and reports true unless h (or a value whose bits h
// shares) was added before.
func (s *seen) addIfNew(h uint64) bool {
	for _, l := range s.layers {
		if l.has(h) {
			return false
		}
	}
	if len(s.layers) == 0 || s.layers[len(s.layers)-1].n >= s.layers[len(s.layers)-1].limit {
		capacity, fp := firstLayerCap, firstLayerFP
		for range s.layers {
			capacity *= 2
			fp *= layerFPRatio
		}
		s.layers = append(s.layers, newBloomLayer(capacity, fp))
	}
	s.layers[len(s.layers)-1].add(h)
	return true
}

// bytes is the memory the filter's bits take.
func (s *seen) bytes() int {
	n := 0
	for _, l := range s.layers {
		n += len(l.bits) * 8
	}
	return n
}

// mix64 is SplitMix64's finaliser: it spreads FNV-1a's hash of a short
// string over all 64 bits, which the probes need.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
