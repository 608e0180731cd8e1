package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"custos"
)

// TestWriterStats: every Update is counted once as a group member, the
// groups are no more than the members, a group run again after a failing
// member is counted as a rerun, the pages written are counted, and
// /metrics shows the same numbers.
func TestWriterStats(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	before := db.WriterStats()

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.Update(ctx, func(tx custos.Tx) error {
				return tx.SetMeta(ctx, fmt.Sprintf("k%d", i), "v")
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := db.WriterStats()
	if got := st.Members - before.Members; got != n {
		t.Errorf("members counted = %d, want %d", got, n)
	}
	if g := st.Groups - before.Groups; g < 1 || g > n {
		t.Errorf("groups counted = %d for %d writes", g, n)
	}
	// Every committed group wrote at least one page (its meta row's leaf)
	// to the WAL, and was counted before its callers were answered.
	if p, g := st.Pages-before.Pages, st.Groups-before.Groups; p < g {
		t.Errorf("pages counted = %d for %d groups", p, g)
	}
	// Busy time counts a group up to the look, and the whole of it once
	// the writer goes back to waiting, just after it answered the group.
	for deadline := time.Now().Add(5 * time.Second); st.Busy <= before.Busy && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		st = db.WriterStats()
	}
	if st.Busy <= before.Busy {
		t.Errorf("busy time did not grow: %v → %v", before.Busy, st.Busy)
	}

	// A member failing after it wrote makes its group run again.
	refused := custos.Errorf(custos.EINVALID, "refused")
	errs := runGroup(t, db,
		func(tx custos.Tx) error { return tx.SetMeta(ctx, "a", "v") },
		func(tx custos.Tx) error {
			if err := tx.SetMeta(ctx, "b", "v"); err != nil {
				return err
			}
			return refused
		})
	if errs[0] != nil || custos.ErrorCode(errs[1]) != custos.EINVALID {
		t.Fatalf("group errors = %v", errs)
	}
	if got := db.WriterStats().Reruns - st.Reruns; got != 1 {
		t.Errorf("reruns counted = %d, want 1", got)
	}

	var b bytes.Buffer
	db.WriteMetrics(&b)
	final := db.WriterStats()
	for name, want := range map[string]uint64{
		"custos_sqlite_commit_groups_total":       final.Groups,
		"custos_sqlite_group_members_total":       final.Members,
		"custos_sqlite_group_reruns_total":        final.Reruns,
		"custos_sqlite_pages_written_total":       final.Pages,
		"custos_sqlite_wal_syncs_total":           final.Syncs,
		"custos_sqlite_audit_filings_total":       final.Filings,
		"custos_sqlite_audit_events_filed_total":  final.Filed,
		"custos_sqlite_audit_index_behind_events": uint64(final.AuditIndexBehind),
	} {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(b.String())
		if m == nil {
			t.Errorf("metrics lack %s:\n%s", name, b.String())
			continue
		}
		if got, _ := strconv.ParseUint(m[1], 10, 64); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if !regexp.MustCompile(`(?m)^custos_sqlite_audit_filing_seconds_total \d+\.\d{6}$`).MatchString(b.String()) {
		t.Errorf("metrics lack the filing seconds:\n%s", b.String())
	}
	m := regexp.MustCompile(`(?m)^custos_sqlite_writer_busy_seconds_total (\d+\.\d+)$`).FindStringSubmatch(b.String())
	if m == nil {
		t.Fatalf("metrics lack the busy seconds:\n%s", b.String())
	}
	// Printed to the microsecond, so it may round up past the later reading.
	if sec, _ := strconv.ParseFloat(m[1], 64); sec <= 0 || sec > final.Busy.Seconds()+1e-6 {
		t.Errorf("busy seconds = %s, want in (0, %v]", m[1], final.Busy.Seconds())
	}
}

// TestWriterBusyCountsTheRunningGroup: while a group runs, WriterStats'
// busy time grows with the clock, no faster, so that its share of any
// window between two looks is at most 1 (the bench divides by that
// window; counted only when a group ended, a long group at the window's
// edge put the share over 1).
func TestWriterBusyCountsTheRunningGroup(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Update(ctx, func(tx custos.Tx) error {
			close(entered)
			<-release
			return tx.SetMeta(ctx, "k", "v")
		})
	}()
	<-entered
	x0 := time.Now()
	a := db.WriterStats()
	x1 := time.Now()
	time.Sleep(20 * time.Millisecond)
	y0 := time.Now()
	b := db.WriterStats()
	y1 := time.Now()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, lo, hi := b.Busy-a.Busy, y0.Sub(x1), y1.Sub(x0); got < lo || got > hi {
		t.Errorf("busy grew by %v between two looks during one group, want between %v and %v", got, lo, hi)
	}
}
