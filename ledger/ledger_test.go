package ledger_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"custos"
	"custos/ledger"
)

func entry(id string, at time.Time) custos.ShredEntry {
	return custos.ShredEntry{SubjectID: custos.SubjectID(id), ShredAt: at, Reason: "customer request", ActorID: "prn_admin"}
}

// TestLedgerChain (S7): appends from two handles on one file (as the
// server and a CLI process on one host) chain into one sequence that reads
// back whole, the file private to its owner.
func TestLedgerChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", ledger.DefaultName)
	a, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := a
			if i%2 == 1 {
				l = b
			}
			if _, err := l.AppendErase(entry("sub_"+string(rune('a'+i%26))+string(rune('a'+i/26)), t0.Add(time.Duration(i)*time.Second))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	r, err := ledger.ReadFile(path)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(r.Entries) != 40 || r.Torn != 0 {
		t.Fatalf("got %d entries, %d torn; want 40, 0", len(r.Entries), r.Torn)
	}
	for i, e := range r.Entries {
		if e.Seq != int64(i+1) || e.Kind != ledger.KindErase || e.ActorID != "prn_admin" || e.Reason != "customer request" {
			t.Errorf("entry %d: %+v", i, e)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("ledger mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestLedgerTamperDetected: an edited, removed or reordered line breaks
// the chain and ReadFile names the line; a torn last line (a crash inside
// a write) is skipped and the next append chains past it.
func TestLedgerTamperDetected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ledger.DefaultName)
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	for i, id := range []string{"sub_a", "sub_b", "sub_c", "sub_d"} {
		if _, err := l.AppendErase(entry(id, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(orig, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty piece after the last newline
	for _, c := range []struct {
		name, want string
		file       []byte
	}{
		{"reason edited", "line 1 does not match its hash", bytes.Replace(orig, []byte(`"customer request"`), []byte(`"customer requesT"`), 1)},
		{"subject changed", "line 3 does not match", bytes.Replace(orig, []byte(`"sub_c"`), []byte(`"sub_x"`), 1)},
		{"line removed", "broken at line 2", bytes.Join([][]byte{lines[0], lines[2], lines[3]}, nil)},
		{"lines swapped", "broken at line 2", bytes.Join([][]byte{lines[0], lines[2], lines[1], lines[3]}, nil)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-"))
			if err := os.WriteFile(p, c.file, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ledger.ReadFile(p)
			if custos.ErrorCode(err) != custos.EINVALID || !strings.Contains(custos.ErrorMessage(err), c.want) {
				t.Fatalf("got %v, want EINVALID saying %q", err, c.want)
			}
		})
	}

	// A torn write at the end: skipped, and the chain goes on after it.
	if err := os.WriteFile(path, append(bytes.Clone(orig), []byte(`{"seq":5,"kind":"era`)...), 0o600); err != nil {
		t.Fatal(err)
	}
	l2, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := l2.AppendErase(entry("sub_e", t0.Add(time.Hour)))
	if err != nil || seq != 5 {
		t.Fatalf("append after a torn line: seq %d, %v; want 5", seq, err)
	}
	r, err := ledger.ReadFile(path)
	if err != nil {
		t.Fatalf("read after a torn line: %v", err)
	}
	if len(r.Entries) != 5 || r.Torn != 1 || r.Entries[4].SubjectID != "sub_e" {
		t.Fatalf("got %d entries, %d torn", len(r.Entries), r.Torn)
	}
}

// TestErasuresSkipVoided: an erase entry voided in its own file is not
// re-applied; entries of several files come out in time order.
func TestErasuresSkipVoided(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	n1, err := ledger.Open(filepath.Join(dir, "node1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	n2, err := ledger.Open(filepath.Join(dir, "node2.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	mustSeq := func(l *ledger.File, id string, at time.Time) int64 {
		seq, err := l.AppendErase(entry(id, at))
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	mustSeq(n1, "sub_late", t0.Add(3*time.Minute))
	voided := mustSeq(n1, "sub_void", t0.Add(4*time.Minute))
	if err := n1.AppendVoid(voided); err != nil {
		t.Fatal(err)
	}
	mustSeq(n2, "sub_early", t0.Add(time.Minute))
	mustSeq(n2, "sub_void", t0.Add(5*time.Minute)) // seq 2 in node2: not voided by node1's void of seq 2
	var reads []*ledger.Read
	for _, n := range []*ledger.File{n1, n2} {
		r, err := ledger.ReadFile(n.Path())
		if err != nil {
			t.Fatal(err)
		}
		reads = append(reads, r)
	}
	var got []string
	for _, e := range ledger.Erasures(reads...) {
		got = append(got, e.SubjectID)
	}
	if want := "sub_early sub_late sub_void"; strings.Join(got, " ") != want {
		t.Fatalf("erasures: got %v, want %s", got, want)
	}
}

// moveAway renames the ledger at path to path.moved and puts a
// directory in its place, where no line can be appended.
func moveAway(t *testing.T, path string) {
	t.Helper()
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
}

// moveBack undoes moveAway.
func moveBack(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".moved", path); err != nil {
		t.Fatal(err)
	}
}

// openLedger opens a new ledger in a temporary directory.
func openLedger(t *testing.T) (string, *ledger.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), ledger.DefaultName)
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, l
}

// TestLedgerUnsyncedSync (S7): erasures written unsynced chain and read
// back like the others, and one Sync puts them all on disk with one
// fsync; a Sync with nothing written does no I/O; a Sync after the path
// was replaced syncs the file the lines went to; an append that cannot
// reach the file fails naming the ledger.
func TestLedgerUnsyncedSync(t *testing.T) {
	path, l := openLedger(t)
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	if _, err := l.AppendErase(entry("sub_a", at)); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"sub_b", "sub_c", "sub_d"} {
		seq, err := l.AppendEraseUnsynced(entry(id, at))
		if err != nil || seq != int64(i+2) {
			t.Fatalf("unsynced %s: seq %d, %v; want %d", id, seq, err, i+2)
		}
	}
	if got := l.Syncs(); got != 1 {
		t.Errorf("after one durable and three unsynced appends: %d fsyncs, want 1", got)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := l.Syncs(); got != 2 {
		t.Errorf("after Sync: %d fsyncs, want 2 (one for the three lines)", got)
	}
	// A durable append after unsynced ones: one fsync covers them all.
	if _, err := l.AppendEraseUnsynced(entry("sub_d2", at)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendErase(entry("sub_d3", at)); err != nil || l.Syncs() != 3 {
		t.Errorf("a durable append after an unsynced one: %v, %d fsyncs; want one more, 3", err, l.Syncs())
	}
	if err := l.Sync(); err != nil || l.Syncs() != 3 {
		t.Errorf("Sync after a durable append: %v, %d fsyncs; want nothing left to sync, 3", err, l.Syncs())
	}
	r, err := ledger.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if es := ledger.Erasures(r); len(es) != 6 || es[5].SubjectID != "sub_d3" {
		t.Fatalf("read back %d erasures (%+v), want 6 chained, the last sub_d3", len(es), es)
	}
	// Nothing written since: Sync makes no call, so it succeeds even with
	// the file gone.
	moveAway(t, path)
	if err := l.Sync(); err != nil || l.Syncs() != 3 {
		t.Errorf("Sync with nothing written: %v, %d fsyncs; want nil and still 3", err, l.Syncs())
	}
	// A line written, then the path replaced before its Sync: the Sync
	// puts the line on disk in the file it went to, and the next append,
	// which finds a directory at the path, fails naming the ledger.
	moveBack(t, path)
	if _, err := l.AppendEraseUnsynced(entry("sub_e", at)); err != nil {
		t.Fatal(err)
	}
	moveAway(t, path)
	if err := l.Sync(); err != nil || l.Syncs() != 4 {
		t.Errorf("Sync after the path was replaced: %v, %d fsyncs; want nil and 4", err, l.Syncs())
	}
	if r, err := ledger.ReadFile(path + ".moved"); err != nil || len(ledger.Erasures(r)) != 7 {
		t.Errorf("the moved file: %v; want it to hold the seven erasures", err)
	}
	if _, err := l.AppendEraseUnsynced(entry("sub_f", at)); custos.ErrorCode(err) != custos.EINTERNAL || !strings.Contains(err.Error(), "shred ledger") {
		t.Errorf("append with a directory at the path: got %v, want EINTERNAL naming the shred ledger", err)
	}
}

// TestLedgerSyncFailureSticks (S7): once an fsync of the ledger has
// failed, the lines it was to write may be lost even if a later fsync
// succeeds (Linux marks them clean), so the File refuses every Sync and
// append from then on, and nothing more is erased until it is reopened.
func TestLedgerSyncFailureSticks(t *testing.T) {
	path, l := openLedger(t)
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	if _, err := l.AppendEraseUnsynced(entry("sub_a", at)); err != nil {
		t.Fatal(err)
	}
	restore := ledger.FailSyncs(syscall.EIO)
	if err := l.Sync(); custos.ErrorCode(err) != custos.EINTERNAL || !errors.Is(err, syscall.EIO) {
		t.Errorf("Sync with the device failing: got %v, want EINTERNAL wrapping EIO", err)
	}
	restore()
	if err := l.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("Sync after a failed fsync: got %v, want the same failure", err)
	}
	if _, err := l.AppendErase(entry("sub_b", at)); !errors.Is(err, syscall.EIO) {
		t.Errorf("append after a failed fsync: got %v, want the same failure", err)
	}
	// A new File on the same path (a restart) appends again.
	l2, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l2.AppendErase(entry("sub_c", at)); err != nil {
		t.Errorf("append through a new File: %v", err)
	}
}
