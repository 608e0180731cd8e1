package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"custos"
	"custos/core"
	"custos/seed"
)

func cmdSeed(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, cf := newFlags("seed", stderr)
	n := fs.Int("subjects", 100, "how many synthetic customers to create")
	records := fs.Int("records", 2, "records (orders, payments, events) per customer")
	seedV := fs.Uint64("seed", 0, "random seed (0: from the clock)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	if *n < 1 || *records < 0 {
		return fmt.Errorf("seed: -subjects must be ≥ 1 and -records ≥ 0")
	}
	node, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), true)
	if err != nil {
		return err
	}
	defer node.Close()
	printAdminKey(stdout, node)
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
	counts := map[string]int{}
	const batch = 500
	stored := 0
	for done := 0; done < *n; {
		var rows []core.ImportInput
		for i := 0; i < batch && done+i < *n; i++ {
			sub := gen.Subject()
			sub.Consent = consent
			rows = append(rows, core.ImportInput{Line: done + i + 1, Subject: sub})
		}
		res, err := node.svc.ImportRows(ctx, purposes, job, rows)
		if err != nil {
			return err
		}
		for _, r := range res {
			counts[r.Status]++
			if r.Status != custos.ImportStored {
				continue
			}
			stored++
			for _, rec := range gen.Records(*records) {
				if _, err := node.svc.CreateRecord(ctx, []string{"fulfilment", "personalisation", "customer-service"}, r.SubjectID, rec); err != nil {
					return fmt.Errorf("seed record: %w", err)
				}
			}
		}
		done += len(rows)
		bar.set(done, counts)
	}
	bar.done()
	fmt.Fprintf(stdout, "seeded %d synthetic customers with %d records each (seed %d; %d refused)\n", stored, *records, *seedV, *n-stored)
	return nil
}
