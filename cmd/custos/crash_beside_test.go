package main

import (
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"custos"
	custoshttp "custos/http"
	mrand "math/rand/v2"
)

const (
	// besideSeedSubjects is the size of the seed that runs beside the
	// crashing node: long enough to outlast several of its rounds.
	besideSeedSubjects = 20000
	// besideRounds bounds the node's rounds: at least the first, while
	// the seed runs; at most the second.
	besideMinRounds, besideMaxRounds = 6, 40
)

var seededRE = regexp.MustCompile(`seeded (\d+) synthetic customers`)

// TestCrashBesideSeed kills a serving SQLite node with SIGKILL at random
// moments while `custos seed`, another process, stores customers in the
// same file, and restarts it on the same data, round after round; the
// seed runs on through the crashes. The two processes' writers take turns
// at the write lock through the file they share (sqlite/turns.go), and
// append to one audit chain. Then the seed must have ended well and each
// customer it stored must have its audit event; everything the node
// acknowledged must be whole (crashCheck); and the chain must verify,
// after each crash, while the seed writes, and at the end (S4, S6).
//
// It also logs how long the seed took: a writer killed while marked
// waiting for the lock leaves its mark behind, which the seed's writer
// yields to until the mark is stale.
func TestCrashBesideSeed(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped under -short")
	}
	bin := scaleBuild(t)
	started := time.Now()
	dir, adminKey := crashInit(t, bin, nil)
	seedv, r, gen := crashSeeds(t, 0x626573696465)
	workers := make([]*crashWorker, crashWorkers)
	for i := range workers {
		workers[i] = &crashWorker{r: mrand.New(mrand.NewPCG(seedv, uint64(i)+2)), dupOK: true}
	}

	p := startChild(t, bin, "serve", "100ms", "--data", dir)
	setupPlans(t, p.url, adminKey)

	sd := exec.Command(bin, "seed", "--data", dir, "-subjects", strconv.Itoa(besideSeedSubjects), "-records", "0",
		"-seed", strconv.FormatUint(seedv|1, 10), "-quiet")
	sd.Env = childEnv("CUSTOS_JOB_INTERVAL=100ms")
	sdOut, sdErr := newSyncBuffer(), newSyncBuffer()
	sd.Stdout, sd.Stderr = sdOut, sdErr
	if err := sd.Start(); err != nil {
		t.Fatalf("start seed: %v", err)
	}
	seedStart := time.Now()
	seedDone := make(chan struct{})
	var seedErr error
	var seedTook time.Duration
	go func() {
		seedErr = sd.Wait()
		seedTook = time.Since(seedStart)
		close(seedDone)
	}()
	t.Cleanup(func() {
		select {
		case <-seedDone:
		default:
			sd.Process.Kill()
			<-seedDone
		}
	})
	seedRunning := func() bool {
		select {
		case <-seedDone:
			return false
		default:
			return true
		}
	}

	rounds, beside := 0, 0
	for {
		c, tr := crashClient(p.url, adminKey)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { w.round(t, c, gen, stop) })
		}
		time.Sleep(time.Duration(50+r.IntN(351)) * time.Millisecond)
		if seedRunning() {
			beside++
		}
		crashEndRound(t, bin, dir, nil, rounds, p, stop, &wg, tr)
		rounds++
		if rounds >= besideMaxRounds || rounds >= besideMinRounds && !seedRunning() {
			break
		}
		p = startChild(t, bin, "serve", "100ms", "--data", dir)
	}
	select {
	case <-seedDone:
	case <-time.After(3 * time.Minute):
		t.Fatalf("the seed had not ended 3 minutes after the node's last crash\nstderr:\n%s", sdErr)
	}
	if seedErr != nil {
		t.Fatalf("seed beside the crashing node: %v\nstdout:\n%s\nstderr:\n%s", seedErr, sdOut, sdErr)
	}
	m := seededRE.FindStringSubmatch(sdOut.String())
	if m == nil {
		t.Fatalf("seed printed no count:\n%s", sdOut)
	}
	stored, _ := strconv.Atoi(m[1])
	// The seed refuses only a customer with a lookup value the node
	// stored first: one of the node's creates.
	sent := 0
	for _, w := range workers {
		sent += w.creates + w.uCreates
	}
	if stored < besideSeedSubjects-sent {
		t.Errorf("the seed stored %d of %d customers; the node's %d creates could have taken at most %d of them", stored, besideSeedSubjects, sent, sent)
	}
	if beside < 2 {
		t.Errorf("the node crashed %d times while the seed ran, want 2 or more: the test tested nothing beside it (the seed took %v)", beside, seedTook)
	}
	t.Logf("%d rounds of SIGKILL, %d of them while the seed ran; the seed stored %d customers in %v (whole test so far %v)",
		rounds, beside, stored, seedTook.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))

	crashCheck(t, bin, dir, nil, adminKey, workers, func(c *custoshttp.Client) {
		// Each customer the seed stored has its import event.
		n := 0
		for _, e := range allAuditEvents(t, c, custos.AuditFilter{Action: ptr(custos.AuditSubjectImport)}) {
			if e.Decision == custos.DecisionAllow {
				n++
			}
		}
		if n != stored {
			t.Errorf("%d %s events allowed, want one for each of the %d customers the seed stored", n, custos.AuditSubjectImport, stored)
		}
		t.Logf("%d %s events, one a customer the seed stored", n, custos.AuditSubjectImport)
	})
}
