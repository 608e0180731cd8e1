//go:build unix

package main

import (
	"bytes"
	"runtime"
	"runtime/trace"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const pause = 100 * time.Millisecond

// blockInRead reads a byte from fd, a blocking pipe: the goroutine sits
// in the read system call, holding its P, until another writes. It
// closes ready just before.
func blockInRead(t *testing.T, fd int, ready chan struct{}) {
	var b [1]byte
	close(ready)
	if _, err := syscall.Read(fd, b[:]); err != nil {
		t.Error(err)
	}
}

// blockInReadBusy is blockInRead under another name, for the phase with
// work waiting for the P.
func blockInReadBusy(t *testing.T, fd int, ready chan struct{}) {
	var b [1]byte
	close(ready)
	if _, err := syscall.Read(fd, b[:]); err != nil {
		t.Error(err)
	}
}

// waitOnChannel waits until c is closed.
func waitOnChannel(c chan struct{}) { <-c }

// readFor runs read on a new pipe and writes to it pause after read
// is about to block: read's system call lasts at least pause.
func readFor(t *testing.T, read func(*testing.T, int, chan struct{})) {
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	ready, done := make(chan struct{}), make(chan struct{})
	go func() { read(t, p[0], ready); close(done) }()
	<-ready
	time.Sleep(pause)
	if _, err := syscall.Write(p[1], []byte{1}); err != nil {
		t.Fatal(err)
	}
	<-done
}

func siteLike(m map[string]time.Duration, name string) time.Duration {
	var d time.Duration
	for k, v := range m {
		if strings.HasSuffix(k, "."+name) {
			d += v
		}
	}
	return d
}

// TestSummarize records a trace of known waits and checks that the
// summary finds each where it happened, for at least as long as the test
// made it last.
func TestSummarize(t *testing.T) {
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Skipf("cannot trace here: %v", err)
	}
	// A system call with nothing else to run: its P runs nothing.
	readFor(t, blockInRead)
	// A goroutine waiting on a channel.
	c := make(chan struct{})
	go func() { time.Sleep(pause); close(c) }()
	waitOnChannel(c)
	// One P, a system call, and two goroutines that want the P: they wait
	// for it until the runtime hands the P over to them.
	old := runtime.GOMAXPROCS(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					for i := 0; i < 1000; i++ {
						_ = i * i
					}
				}
			}
		})
	}
	readFor(t, blockInReadBusy)
	close(stop)
	wg.Wait()
	runtime.GOMAXPROCS(old)
	trace.Stop()

	s, err := Summarize(&buf)
	if err != nil {
		t.Fatal(err)
	}
	min := pause * 8 / 10
	if s.Span < 3*pause {
		t.Errorf("span %v, want at least %v", s.Span, 3*pause)
	}
	if s.Procs < 1 {
		t.Errorf("GOMAXPROCS %d, want the trace's metric", s.Procs)
	}
	// A system call's time is either held or taken. Alone, the read held
	// its P until the runtime's monitor took it (10–20 ms into a long
	// call), and the P ran nothing else; with work waiting, the monitor
	// handed the P to it.
	for _, name := range []string{"blockInRead", "blockInReadBusy"} {
		var syscalls time.Duration
		for k, d := range s.States {
			if k.State == "syscall" && strings.HasSuffix(k.Site, "."+name) {
				syscalls += d
			}
		}
		held, taken := siteLike(s.Held, name), siteLike(s.Taken, name)
		if syscalls < min || held+taken != syscalls {
			t.Errorf("%s: %v in the system call, held %v + taken %v; want at least %v, all of it held or taken", name, syscalls, held, taken, min)
		}
	}
	if held := siteLike(s.Held, "blockInRead"); held <= 0 {
		t.Errorf("blockInRead alone held its P for %v", held)
	}
	if w := s.States[StateSite{"waiting", pkgName(t) + ".waitOnChannel"}]; w < min {
		t.Errorf("waitOnChannel: waiting %v, want at least %v (states %v)", w, min, s.States)
	}
	if taken := siteLike(s.Taken, "blockInReadBusy"); taken < pause/2 {
		t.Errorf("blockInReadBusy: taken %v; want the runtime to have handed the P to the waiting goroutines for most of %v", taken, pause)
	}
	if s.States[StateSite{State: "runnable"}] < min || s.WaitingAll < min {
		t.Errorf("runnable %v, some goroutine waiting %v; want at least %v of each", s.States[StateSite{State: "runnable"}], s.WaitingAll, min)
	}
	// While the read and the channel waited alone, no P had anything to
	// run, and the summary says what the goroutines waited for then;
	// while two goroutines wanted the P, it was never idle for want of
	// work.
	idleAt := func(state, name string) time.Duration {
		var d time.Duration
		for k, v := range s.IdleBlocked {
			if k.State == state && strings.HasSuffix(k.Site, "."+name) {
				d += v
			}
		}
		return d
	}
	if s.Idle < 2*min || s.IdleProcs < s.Idle {
		t.Errorf("idle %v, %v P-time; want at least %v, and at least one P idle throughout", s.Idle, s.IdleProcs, 2*min)
	}
	if d := idleAt("syscall", "blockInRead"); d < min {
		t.Errorf("blockInRead: %v in a system call while the Ps were idle, want at least %v", d, min)
	}
	if d := idleAt("waiting", "waitOnChannel"); d < min {
		t.Errorf("waitOnChannel: %v waiting while the Ps were idle, want at least %v", d, min)
	}
	if d := idleAt("syscall", "blockInReadBusy"); d > pause/2 {
		t.Errorf("blockInReadBusy: %v in a system call while the Ps were idle, want under %v: two goroutines wanted the P", d, pause/2)
	}
	var out bytes.Buffer
	s.Write(&out, 0)
	for _, want := range []string{"GOMAXPROCS", "blockInRead", "waitOnChannel", "runnable", "waited for a P", "while a P ran nothing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed summary lacks %q:\n%s", want, out.String())
		}
	}
}

// pkgName is this package's path as it appears in function names.
func pkgName(t *testing.T) string {
	pc, _, _, _ := runtime.Caller(0)
	name := runtime.FuncForPC(pc).Name()
	return name[:strings.LastIndex(name, ".")]
}

// TestSummarizeNotATrace: anything else is refused with an error.
func TestSummarizeNotATrace(t *testing.T) {
	if _, err := Summarize(strings.NewReader("not a trace")); err == nil {
		t.Fatal("Summarize accepted a text")
	}
}
