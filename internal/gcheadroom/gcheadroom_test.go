package gcheadroom

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, headroom uint64
		want           int
	}{
		{32 * mib, 128 * mib, 400},  // a small heap gets the headroom
		{128 * mib, 128 * mib, 100}, // as large as the headroom: Go's default
		{512 * mib, 128 * mib, 100}, // larger: Go's default, never less
		{1 * mib, 128 * mib, 3200},  // below Go's 4 MiB minimum: as for 4 MiB
		{0, 128 * mib, 3200},
	} {
		if got := Percent(c.live, c.headroom); got != c.want {
			t.Errorf("Percent(%d MiB live, %d MiB headroom) = %d, want %d", c.live/mib, c.headroom/mib, got, c.want)
		}
	}
}

// gogc is the collector's percentage now.
func gogc() int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// waitPercent collects until the pacer has set want, or fails.
func waitPercent(t *testing.T, want func(int64) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !want(gogc()) {
		if time.Now().After(deadline) {
			t.Fatalf("percentage %d, want %s", gogc(), what)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
}

// TestPacer: after collections the percentage puts the goal the headroom
// above a small live heap, falls back to Go's default when the live heap
// outgrows the headroom, and is Go's default again after Stop. Not in
// parallel: it sets the process's percentage.
func TestPacer(t *testing.T) {
	t.Setenv("GOGC", "")
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	p := Start(256 << 20)
	if p == nil {
		t.Fatal("Start did nothing")
	}
	defer p.Stop()
	// A live heap of a few MiB (the test binary's): the headroom is many
	// times it.
	waitPercent(t, func(v int64) bool { return v >= 1000 }, "at least 1000 for a live heap of a few MiB")
	// A live heap larger than the headroom.
	ballast := make([][]byte, 320)
	for i := range ballast {
		ballast[i] = make([]byte, 1<<20)
	}
	waitPercent(t, func(v int64) bool { return v == 100 }, "100 for a live heap over the headroom")
	runtime.KeepAlive(ballast)
	ballast = nil
	waitPercent(t, func(v int64) bool { return v >= 1000 }, "at least 1000 again once the heap is small")
	p.Stop()
	if v := gogc(); v != 100 {
		t.Errorf("after Stop: %d, want 100", v)
	}
}

// TestPacerLeavesGOGC: an operator's GOGC stands.
func TestPacerLeavesGOGC(t *testing.T) {
	t.Setenv("GOGC", "200")
	if p := Start(256 << 20); p != nil {
		p.Stop()
		t.Error("Start changed the percentage though GOGC is set")
	}
	if p := Start(0); p != nil {
		p.Stop()
		t.Error("Start with no headroom did something")
	}
}
