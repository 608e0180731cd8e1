package main

import (
	"context"
	"fmt"
	"io"

	"custos"
	"custos/audit"
	"custos/keys"
)

// verifyPage is how many audit events are read per transaction while
// verifying, so memory stays flat however long the chain is.
const verifyPage = 5000

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: custos audit verify [--data DIR | --store URL] [--reindex]")
		return errUsage
	}
	fs, cf := newFlags("audit verify", stderr)
	reindex := fs.Bool("reindex", false, "SQLite: file again the audit events that the audit query index lacks")
	cfg, err := cf.parse(fs, args[1:], getenv)
	if err != nil {
		return err
	}
	n, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), false)
	if err != nil {
		return err
	}
	defer n.Close()
	rep := verifyAudit(ctx, n)
	if rep.Err != nil {
		return rep.Err
	}
	if !rep.OK {
		fmt.Fprintf(stdout, "audit chain BROKEN: %s at event %d: %s\n", rep.Problem.Kind, rep.Problem.Seq, rep.Problem.Detail)
		fmt.Fprintf(stdout, "(%d events read, %d signed checkpoints, signing key %s)\n", rep.Events, rep.Checkpoints, keys.PublicKeyID(n.signer.Public()))
		return &exitError{code: 1, err: fmt.Errorf("audit chain broken at event %d (%s)", rep.Problem.Seq, rep.Problem.Kind)}
	}
	fmt.Fprintf(stdout, "audit chain OK: %d events, %d signed checkpoints verified (signing key %s)\n", rep.Events, rep.Checkpoints, n.signer.KeyID())
	return checkAuditIndex(ctx, n, *reindex, stdout)
}

// auditIndex is a store whose audit queries use an index kept outside
// the hash chain (SQLite's, in custos.db-auditindex).
type auditIndex interface {
	CheckAuditIndex(ctx context.Context) (int64, error)
	RepairAuditIndex(ctx context.Context) (int64, error)
}

// checkAuditIndex checks that n's audit query index holds every event it
// claims to, or with repair files the events again from the first it
// lacks.
func checkAuditIndex(ctx context.Context, n *node, repair bool, stdout io.Writer) error {
	ix, ok := n.store.(auditIndex)
	if !ok {
		return nil
	}
	if repair {
		seq, err := ix.RepairAuditIndex(ctx)
		if err != nil {
			return err
		}
		if seq > 0 {
			fmt.Fprintf(stdout, "audit index repaired: events from %d filed again\n", seq)
		}
	}
	seq, err := ix.CheckAuditIndex(ctx)
	if err != nil {
		return err
	}
	if seq > 0 {
		fmt.Fprintf(stdout, "audit index INCOMPLETE at event %d: audit queries (GET /v1/audit) do not find it. The chain is intact; run custos audit verify --reindex to file the events again.\n", seq)
		return &exitError{code: 1, err: fmt.Errorf("audit index incomplete at event %d", seq)}
	}
	fmt.Fprintln(stdout, "audit index OK")
	return nil
}

// verifyAudit recomputes the audit chain of n's store and checks its signed
// checkpoints (custos audit verify, and after custos restore).
func verifyAudit(ctx context.Context, n *node) *audit.Report {
	var cps []*custos.AuditCheckpoint
	if err := n.store.View(ctx, func(tx custos.Tx) (err error) {
		cps, err = tx.ListCheckpoints(ctx)
		return err
	}); err != nil {
		return &audit.Report{Err: err}
	}
	events := func(yield func(*custos.AuditEvent, error) bool) {
		var after int64
		for {
			var page []*custos.AuditEvent
			err := n.store.View(ctx, func(tx custos.Tx) (err error) {
				page, err = tx.FindAuditEvents(ctx, custos.AuditFilter{AfterSeq: after, Limit: verifyPage})
				return err
			})
			if err != nil {
				yield(nil, err)
				return
			}
			for _, e := range page {
				if !yield(e, nil) {
					return
				}
			}
			if len(page) < verifyPage {
				return
			}
			after = page[len(page)-1].Seq
		}
	}
	return audit.Verify(events, cps, n.signer.Public())
}
