package main

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"custos"
	custoshttp "custos/http"
	"custos/seed"
)

const (
	// besideSeedSubjects is the size of the seed that runs beside the
	// crashing node: long enough to outlast several of its rounds.
	besideSeedSubjects = 20000
	// besideMinRounds and besideMaxRounds bound the node's rounds: at
	// least the first, and on while the seed runs, up to the second.
	besideMinRounds, besideMaxRounds = 6, 40
)

var seededRE = regexp.MustCompile(`seeded (\d+) synthetic customers`)

// crashRetentionKills is how many runs crashKillRuns kills before it
// lets one finish.
const crashRetentionKills = 4

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
// yielded to until the mark was stale, before marks named their process
// (sqlite/turns.go).
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

// TestCrashRetentionRun kills `custos retention run` with SIGKILL at
// random moments while a node serves the same SQLite store, and starts it
// again, until a run finishes. A run saves its cursor and counts with
// each batch and resumes from them (core.SweepRetention), and its lock
// file goes with the killed process (sqlite.DB.TryLeader): so the run
// that finishes must have resumed, certify every due record once, with
// exactly the number anonymised, in the one certificate on the store,
// which verifies; nothing must be left due; and the chain must verify
// (L2, L3, S4).
func TestCrashRetentionRun(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped under -short")
	}
	const subjects, orders = 120, 5
	ctx := context.Background()
	bin := scaleBuild(t)
	dir, adminKey := crashInit(t, bin, nil)
	p := startChild(t, bin, "serve", "100ms", "--data", dir)
	setupPlans(t, p.url, adminKey)
	c, tr := crashClient(p.url, adminKey)
	defer tr.CloseIdleConnections()
	_, r, gen := crashSeeds(t, 0x726574656e)
	var ids []custos.SubjectID
	for i := range subjects {
		sub, err := c.CreateSubject(ctx, scalePurposes, custos.NewSubject{Fields: gen.subject(), Provenance: seed.Provenance})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sub.ID)
		for j := range orders {
			// Completed four years ago: past the 3-year floor of
			// transaction records, so due to be anonymised.
			if _, err := c.CreateRecord(ctx, []string{"fulfilment"}, sub.ID, custos.NewRecord{Type: "order",
				OccurredAt: time.Now().AddDate(-4, 0, -i-j), Data: map[string]any{"order_no": fmt.Sprintf("SO-%d-%d", i, j), "amount": "88.00", "currency": "CNY"},
				Provenance: seed.Provenance}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The first runs are killed at a random moment of their sweep, once
	// it has begun (its first progress line; the cursor is saved by
	// then); the next is left to finish.
	out, _, killed := crashKillRuns(t, bin, dir, r, "retention: rule", 40*time.Millisecond, "retention", "run", "--data", dir, "-batch", "5")
	if killed < 2 || !strings.Contains(out, "(resumed an interrupted run)") {
		t.Errorf("%d runs killed before one finished, want 2 or more, and the finished one resumed: the test tested nothing\n%s", killed, out)
	}
	m := certRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the finished run printed no certificate:\n%s", out)
	}
	anonymised := ruleRow(t, out, "transaction-records")[6]
	if anonymised != strconv.Itoa(subjects*orders) {
		t.Errorf("the finished run anonymised %s transaction records, want %d, each counted once across %d killed runs:\n%s", anonymised, subjects*orders, killed, out)
	}
	code, certs, _ := runCLI(t, ctx, "retention", "certificates", "--data", dir)
	if code != 0 || !strings.Contains(certs, m[1]) || !strings.Contains(certs, "1 certificates") {
		t.Errorf("certificates after %d killed runs: code %d, want the one certificate %s\n%s", killed, code, m[1], certs)
	}
	code, vout, verr := runCLI(t, ctx, "retention", "verify", m[1], "--data", dir)
	if code != 0 || !strings.Contains(vout, "certificate "+m[1]+" OK") {
		t.Errorf("verify %s: code %d\n%s\n%s", m[1], code, vout, verr)
	}
	code, dry, _ := runCLI(t, ctx, "retention", "run", "--dry-run", "--data", dir)
	if row := ruleRow(t, dry, "transaction-records"); code != 0 || row[6] != "0" {
		t.Errorf("a dry run after the finished run: code %d, %s still to anonymise, want 0", code, row[6])
	}
	// The node served on: the customers' orders are gone from it (their
	// unlinked residue is kept apart), and the customers read whole.
	for _, id := range ids[:10] {
		recs, err := c.FindRecords(ctx, []string{"fulfilment"}, id, "")
		if err != nil || len(recs) != 0 {
			t.Errorf("the node's read of %s's records after the run: %d, %v; want none", id, len(recs), err)
		}
		if _, err := c.FindSubjectByID(ctx, scalePurposes, id); err != nil {
			t.Errorf("the node's read of %s after the run: %v", id, err)
		}
	}
	p.terminate(t)
	events, _ := crashVerify(t, bin, dir, nil, "at the end")
	t.Logf("%d retention runs killed, the next finished: %s transaction records anonymised in one certificate; chain OK, %d events", killed, anonymised, events)
}

// seedProgressRE is the last state of custos seed's progress bar.
var seedProgressRE = regexp.MustCompile(`stored (\d+)  rejected (\d+)  duplicate (\d+)  already (\d+)`)

// TestCrashSeedRun kills `custos seed` four times in the middle of its
// batches, beside a serving node that answers reads before their audit
// event's fsync (read_audit_durability committed), then runs it once
// more to the end with the same seed. Each batch is a transaction and
// records its rows in the seed's import job, so the last run stores what
// the killed ones did not and finds the rest already stored: each of the
// customers must be stored exactly once (one allowed import event each).
// The killed processes' commits must not leave the file's data commits
// begun and ended apart, which would stop the node's early answers
// (sqlite/readcache.go's repairDead), and the chain must verify.
func TestCrashSeedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness skipped under -short")
	}
	const subjects = 6000
	bin := scaleBuild(t)
	dir, adminKey := crashInit(t, bin, nil)
	p := startChild(t, bin, "serve", "100ms", "--data", dir, "--read-audit-durability", "committed")
	setupPlans(t, p.url, adminKey)
	c, tr := crashClient(p.url, adminKey)
	defer tr.CloseIdleConnections()
	seedv, r, _ := crashSeeds(t, 0x7365656472)

	// Killed once its progress shows a batch done; the next run finishes.
	_, final, killed := crashKillRuns(t, bin, dir, r, "stored ", 150*time.Millisecond, "seed", "--data", dir, "-subjects", strconv.Itoa(subjects),
		"-records", "0", "-seed", strconv.FormatUint(seedv|1, 10))
	ms := seedProgressRE.FindAllStringSubmatch(final, -1)
	if ms == nil {
		t.Fatalf("the last seed run showed no progress:\n%s", final)
	}
	last := ms[len(ms)-1]
	stored, _ := strconv.Atoi(last[1])
	already, _ := strconv.Atoi(last[4])
	if last[2] != "0" || last[3] != "0" || stored+already != subjects {
		t.Errorf("the last run: stored %s, rejected %s, duplicate %s, already %s; want %d stored or already, none refused", last[1], last[2], last[3], last[4], subjects)
	}
	if killed < 2 || already == 0 {
		t.Errorf("%d runs killed, %d customers found already stored by the last: the test tested nothing", killed, already)
	}
	n := 0
	for _, e := range allAuditEvents(t, c, custos.AuditFilter{Action: ptr(custos.AuditSubjectImport)}) {
		if e.Decision == custos.DecisionAllow {
			n++
		}
	}
	if n != subjects {
		t.Errorf("%d customers stored across the runs, want each of the %d once", n, subjects)
	}
	// The killed processes' commits: counted ended, whether or not one
	// was killed inside one (the node's checkpoint rounds repair them).
	deadline := time.Now().Add(10 * time.Second)
	for {
		begun, ended := metricAt(t, p.url, "custos_sqlite_data_commits_begun_total"), metricAt(t, p.url, "custos_sqlite_data_commits_ended_total")
		if begun == ended {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("data commits begun %d, ended %d, 10 s after the last seed: the node answers no read early", begun, ended)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.terminate(t)
	events, _ := crashVerify(t, bin, dir, nil, "at the end")
	t.Logf("%d seed runs killed; the last stored %d and found %d already stored; %d import events; chain OK, %d events", killed, stored, already, n, events)
}

// crashKillRuns runs `bin args…` on dir again and again. The first
// crashRetentionKills runs are killed with SIGKILL within most of
// showing progress (the text, on stderr), each followed by a check of the
// chain; the next is left to finish, and its stdout and stderr are
// returned with the number killed.
func crashKillRuns(t *testing.T, bin, dir string, r *mrand.Rand, progress string, most time.Duration, args ...string) (stdout, stderr string, killed int) {
	t.Helper()
	for try := 1; ; try++ {
		if try > 30 {
			t.Fatalf("%s: no run finished in %d tries (%d killed)", args[0], try-1, killed)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = childEnv()
		out, errOut := newSyncBuffer(), newSyncBuffer()
		cmd.Stdout, cmd.Stderr = out, errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if try <= crashRetentionKills && scaleWait(errOut, progress, 20*time.Second) {
			time.Sleep(time.Duration(r.Int64N(int64(most))))
			_ = cmd.Process.Kill()
		}
		err := <-done
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL {
			killed++
			crashVerify(t, bin, dir, nil, fmt.Sprintf("after %s run %d was killed", args[0], try))
			continue
		}
		if err != nil {
			t.Fatalf("%s run %d: %v\nstdout:\n%s\nstderr:\n%s", args[0], try, err, out, errOut)
		}
		return out.String(), errOut.String(), killed
	}
}
