package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"custos"
	"custos/core"
	"custos/seed"
)

// A batch is one write transaction. Beside another process writing the
// same SQLite file (a serving node), that process's writer waits for up to
// one batch's transaction, even though the two take turns at the write
// lock (sqlite/turns.go): so a batch is smaller while one does. Measured
// beside a node serving reads, a batch of 500 held the lock 200–750 ms.
const seedBatchSize, seedBatchShared = 500, 100

// seedBatch is one batch of generated customers and, by row, the records
// to create for each, in the batch's transaction, if it is stored.
type seedBatch struct {
	rows    []core.ImportInput
	records [][]custos.NewRecord
}

func cmdSeed(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) (err error) {
	fs, cf := newFlags("seed", stderr)
	n := fs.Int("subjects", 100, "how many synthetic customers to create")
	records := fs.Int("records", 2, "records (orders, payments, events) per customer")
	seedV := fs.Uint64("seed", 0, "random seed (0: from the clock)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	inflight := fs.Int("inflight", 4, fmt.Sprintf("batches (of %d customers, %d beside another process writing the SQLite file) prepared and written at once (1–16)", seedBatchSize, seedBatchShared))
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the seeding to this file")
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	if *n < 1 || *records < 0 {
		return fmt.Errorf("seed: -subjects must be ≥ 1 and -records ≥ 0")
	}
	if *inflight < 1 || *inflight > maxInflight {
		return fmt.Errorf("seed: -inflight must be 1–16")
	}
	node, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), true)
	if err != nil {
		return err
	}
	defer node.Close()
	gc, _ := startGC(cfg)
	defer gc.Stop()
	printAdminKey(stdout, node)
	if *cpuProfile != "" {
		prof, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("seed: %w", err)
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			return errors.Join(fmt.Errorf("seed: cpu profile: %w", err), prof.Close())
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := prof.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("seed: cpu profile: %w", cerr)
			}
		}()
	}
	if *seedV == 0 {
		*seedV = uint64(time.Now().UnixNano())
	}
	gen := seed.New(rand.New(rand.NewPCG(*seedV, 0x637573746f73)))
	ctx = system(ctx)
	purposes := []string{"account", "fulfilment", "legal-obligation", "risk-control"}
	notice, err := syntheticNotice(ctx, node.svc, stderr)
	if err != nil {
		return err
	}
	consent := syntheticConsent(notice, node.svc.Catalog())
	job := fmt.Sprintf("seed-%d", *seedV)
	bar := newProgress(stderr, *n, *quiet)

	// One goroutine generates (the generator is sequential and never
	// repeats a lookup value); -inflight workers each import a batch
	// through the same path as `custos import` (preparation outside the
	// writer, one write transaction per batch), whose transaction also
	// creates the records of the customers it stores
	// (ImportRowsWithRecords).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan seedBatch, *inflight)
	go func() {
		defer close(batches)
		for done := 0; done < *n; {
			size := seedBatchSize
			if node.sqlite != nil && node.sqlite.OthersWriting() {
				size = seedBatchShared
			}
			b := seedBatch{}
			for i := 0; i < size && done+i < *n; i++ {
				sub := gen.Subject()
				sub.Consent = consent
				b.rows = append(b.rows, core.ImportInput{Line: done + i + 1, Subject: sub})
				b.records = append(b.records, gen.Records(*records))
			}
			done += len(b.rows)
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu       sync.Mutex
		firstErr error
		counts   = map[string]int{}
		done     int
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	recordPurposes := []string{"fulfilment", "personalisation", "customer-service"}
	for range *inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				res, err := node.svc.ImportRowsWithRecords(ctx, purposes, job, b.rows,
					core.ImportRecords{Purposes: recordPurposes, ByRow: b.records, NoReceipts: true})
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				for _, r := range res {
					counts[r.Status]++
				}
				done += len(b.rows)
				bar.set(done, counts)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	bar.done()
	if firstErr != nil {
		return firstErr
	}
	stored := counts[custos.ImportStored]
	progress := stderr
	if *quiet {
		progress = io.Discard
	}
	node.analyze(ctx, progress)
	fmt.Fprintf(stdout, "seeded %d synthetic customers with %d records each (seed %d; %d refused)\n", stored, *records, *seedV, *n-stored)
	return nil
}
