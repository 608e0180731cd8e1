package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"custos"
	custoshttp "custos/http"
	"custos/sqlite"
)

var certRE = regexp.MustCompile(`destruction certificate: (cert_[a-z2-7]{26})`)

// ruleRow returns the columns of a rule's row in a printed report.
func ruleRow(t *testing.T, out, rule string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 12 && f[0] == rule {
			return f
		}
	}
	t.Fatalf("no row for rule %s in:\n%s", rule, out)
	return nil
}

// TestRetentionCLI walks the retention commands end to end on a real data
// directory (L1–L3): a dry run shows per rule what would happen and what a
// legal hold keeps back, and changes nothing; a run anonymises the expired
// orders the hold does not cover and writes a certificate that lists and
// verifies, until tampered with; a rules file below a legal minimum is
// refused; the API serves the same certificates.
func TestRetentionCLI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	prov := custos.Provenance{Collector: "pos", Channel: "pos", Source: "customer"}
	var subs []custos.SubjectID
	for i, mobile := range []string{"13900001001", "13900001002"} {
		s, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment"}, custos.NewSubject{
			Fields: map[string]string{"name": "王小明", "mobile": mobile}, Provenance: prov})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s.ID)
		// Completed four years ago: past the 3-year floor.
		if _, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, s.ID, custos.NewRecord{Type: "order",
			OccurredAt: time.Now().AddDate(-4, 0, -i), Data: map[string]any{"order_no": "SO-CANARY-1", "amount": "88.00", "currency": "CNY"},
			Provenance: prov}); err != nil {
			t.Fatal(err)
		}
	}
	hold, err := admin.PlaceHold(ctx, custoshttp.HoldRequest{Scope: custos.HoldCustomer, SubjectID: subs[1], Reason: "dispute 7", Owner: "legal"})
	if err != nil {
		t.Fatal(err)
	}
	srv.stop(t)

	code, out, errOut := runCLI(t, ctx, "retention", "run", "--dry-run", "--data", dir)
	if code != 0 {
		t.Fatalf("dry run: code %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "DRY RUN") || !strings.Contains(out, "legal hold "+hold.ID+" (customer) held back 1 items") {
		t.Errorf("dry run output:\n%s", out)
	}
	if row := ruleRow(t, out, "transaction-records"); row[6] != "1" || row[9] != "1" {
		t.Errorf("dry run transaction-records: anonymised %s, held %s; want 1, 1", row[6], row[9])
	}
	if !strings.Contains(errOut, "retention: rule 1/") {
		t.Errorf("no progress lines on a non-terminal stderr:\n%s", errOut)
	}
	code, out, _ = runCLI(t, ctx, "retention", "certificates", "--data", dir)
	if code != 0 || !strings.Contains(out, "0 certificates") {
		t.Errorf("after a dry run: code %d\n%s", code, out)
	}

	code, out, errOut = runCLI(t, ctx, "retention", "run", "--data", dir)
	if code != 0 {
		t.Fatalf("run: code %d\n%s\n%s", code, out, errOut)
	}
	m := certRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("run printed no certificate:\n%s", out)
	}
	cert := m[1]
	if row := ruleRow(t, out, "transaction-records"); row[6] != "1" || row[9] != "1" {
		t.Errorf("run transaction-records: anonymised %s, held %s; want 1, 1", row[6], row[9])
	}
	code, out, _ = runCLI(t, ctx, "retention", "certificates", "--data", dir)
	if code != 0 || !strings.Contains(out, cert) || !strings.Contains(out, "1 certificates") {
		t.Errorf("certificates: code %d\n%s", code, out)
	}
	code, out, errOut = runCLI(t, ctx, "retention", "verify", cert, "--data", dir)
	if code != 0 || !strings.Contains(out, "certificate "+cert+" OK") {
		t.Errorf("verify: code %d\n%s\n%s", code, out, errOut)
	}
	for _, pii := range []string{string(subs[0]), string(subs[1]), "王小明", "13900001001", "SO-CANARY-1"} {
		if strings.Contains(out, pii) {
			t.Errorf("certificate shows %q", pii)
		}
	}

	// Tampered: a count lowered in the stored body.
	db, err := sql.Open("sqlite", filepath.Join(dir, "custos.db"))
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `UPDATE retention_certificates SET body = replace(body, '"anonymised":1', '"anonymised":0') WHERE id = ?`, cert)
	db.Close()
	code, out, _ = runCLI(t, ctx, "retention", "verify", cert, "--data", dir)
	if code != 1 || !strings.Contains(out, "INVALID") {
		t.Errorf("tampered verify: code %d, want 1\n%s", code, out)
	}

	// A rules file below the legal minimum is refused, naming rule and floor.
	bad := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(bad, []byte(`{"version": "x", "rules": [{"name": "short-orders", "target": "records",
		"category": "transaction", "period": "1y", "trigger": "transaction_completion", "action": "delete"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, ctx, "retention", "run", "--data", dir, "--retention", bad)
	if code == 0 || !strings.Contains(errOut, `"short-orders"`) || !strings.Contains(errOut, "legal minimum of 3y") || !strings.Contains(errOut, "E-commerce Law Art. 31") {
		t.Errorf("rules below the floor: code %d\n%s", code, errOut)
	}

	// The API lists and verifies the same certificate; the hold, once
	// released, lets the next run anonymise the held order.
	adminKey := srv.AdminKey
	srv = startServer(t, dir)
	admin = srv.client(adminKey)
	cs, err := admin.FindCertificates(ctx)
	if err != nil || len(cs) != 1 || cs[0].ID != cert {
		t.Fatalf("API certificates: %v %+v", err, cs)
	}
	chk, err := admin.VerifyCertificate(ctx, cert)
	if err != nil || chk.Valid {
		t.Errorf("API verify of the tampered certificate: %v %+v; want invalid", err, chk)
	}
	if _, err := admin.ReleaseHold(ctx, hold.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := admin.RunRetention(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rules {
		if r.Rule == "transaction-records" && (r.Anonymised != 1 || r.Held != 0) {
			t.Errorf("after release: %+v", r)
		}
	}
	chk, err = admin.VerifyCertificate(ctx, rep.CertificateID)
	if err != nil || !chk.Valid {
		t.Errorf("API verify of the new certificate: %v %+v", err, chk)
	}
	srv.stop(t)
}

// TestRetentionScheduled: a running server sweeps on its schedule
// (CUSTOS_RETENTION_INTERVAL) as the job's leader, and the sweep leaves a
// certificate that verifies (L2).
func TestRetentionScheduled(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir)
	admin := srv.client(srv.AdminKey)
	prov := custos.Provenance{Collector: "pos", Channel: "pos", Source: "customer"}
	s, err := admin.CreateSubject(ctx, []string{"account"}, custos.NewSubject{Fields: map[string]string{"name": "王小明"}, Provenance: prov})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateRecord(ctx, []string{"fulfilment"}, s.ID, custos.NewRecord{Type: "order",
		OccurredAt: time.Now().AddDate(-4, 0, 0), Data: map[string]any{"amount": "1.00"}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)

	sctx, cancel := context.WithCancel(ctx)
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--data", dir, "--addr", "127.0.0.1:0"}, stdout, stderr,
			envOf(map[string]string{"CUSTOS_RETENTION_INTERVAL": "20ms"}))
	}()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		out, changed := stderr.snapshot()
		if strings.Contains(out, "retention sweep") && strings.Contains(out, "certificate_id=cert_") {
			break
		}
		select {
		case <-changed:
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d before sweeping:\n%s", code, out)
		case <-deadline.C:
			cancel()
			t.Fatalf("no scheduled sweep within %v:\n%s", startTimeout, out)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit code %d:\n%s", code, stderr)
	}
	code, out, _ := runCLI(t, ctx, "retention", "certificates", "--data", dir)
	m := regexp.MustCompile(`(?m)^(cert_[a-z2-7]{26})`).FindAllStringSubmatch(out, -1)
	if code != 0 || len(m) == 0 {
		t.Fatalf("certificates after the scheduled sweep: code %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, ctx, "retention", "verify", m[0][1], "--data", dir)
	if code != 0 || !strings.Contains(out, `"anonymised":1`) {
		t.Errorf("first scheduled certificate: code %d\n%s", code, out)
	}
}

// TestRetentionRunOneAtATime: on SQLite, as on PostgreSQL, one retention
// sweep runs at a time among the processes on a store (L2). `custos
// retention run` refuses while another process sweeps (here the test
// holds the job's lock on the same file, as a serving node's scheduled
// sweep does), and runs once it has finished. Before, nothing stopped
// them: two that resumed one interrupted run each wrote a certificate of
// it.
func TestRetentionRunOneAtATime(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	startServer(t, dir).stop(t)
	db, err := sqlite.Open(ctx, filepath.Join(dir, "custos.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	release, ok, err := db.TryLeader(ctx, jobRetention)
	if err != nil || !ok {
		t.Fatalf("the test's lead: %v, %v", ok, err)
	}
	code, out, errOut := runCLI(t, ctx, "retention", "run", "--data", dir)
	if code == 0 || !strings.Contains(errOut, "another node or process is running the retention sweep") {
		t.Errorf("retention run while another process sweeps: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if certRE.MatchString(out) {
		t.Errorf("a certificate was written while another process swept:\n%s", out)
	}
	release()
	code, out, errOut = runCLI(t, ctx, "retention", "run", "--data", dir)
	if code != 0 || !certRE.MatchString(out) {
		t.Errorf("retention run once the other finished: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
