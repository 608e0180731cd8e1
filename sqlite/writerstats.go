package sqlite

import (
	"database/sql"
	"fmt"
	"io"
	"time"

	"custos/internal/promtext"

	"modernc.org/sqlite"
)

// WriterStats counts the group-commit writer's work since the store was
// opened: how many commit groups it ran, how many Update calls they held,
// how many groups ran again (with savepoints after a member failed, or
// once more because another writer had moved the audit log without
// saying so, sqlite.go's keptHeadFor), and
// how long the writer was busy with groups (running them, committing and
// syncing, answering, and the WAL reset between two groups) rather than
// waiting for requests. Busy time over wall time near 1 means writes
// queue for the writer; the mean group size says how many writes share
// one commit and its fsync.
//
// Pages is how many database pages the writer wrote to the WAL (SQLite's
// SQLITE_DBSTATUS_CACHE_WRITE): each is a 4 KiB frame of the WAL, which
// the write connection's VFS gathers into writes of up to 31 frames
// (walvfs.go), so pages per write is what a commit costs in I/O
// (BENCHMARKS.md, sixth and nineteenth sessions).
//
// Syncs is how many fsyncs of the WAL the syncer made to answer the
// groups (durable.go): one covers every group committed before it began,
// so under load there are fewer than groups.
type WriterStats struct {
	Groups, Members, Reruns, Pages, Syncs uint64
	// Early is how many groups were answered before their sync
	// (Options.ReadAuditCommitted).
	Early uint64
	// DataCommitsBegun and DataCommitsEnded count the commits of a
	// change to anything but the audit log that every process on the
	// file began and ended (sharedGen.commitData); while they differ,
	// one is under way, or a process was killed inside one, and no
	// group is answered before its sync.
	DataCommitsBegun, DataCommitsEnded uint64
	// Yields is how often this store's writer, having had the last turn
	// at the write lock, let another process's waiting writer begin
	// first (turns.go).
	Yields uint64
	// Cuts is how many of its commit groups it ended early, after the
	// members run so far, for another process's waiting writer; the
	// rest led the next group (turns.go's cutGroup).
	Cuts uint64
	Busy time.Duration
	// Filings is how many times this store's filer filed audit events
	// into the audit log's index (auditindex.go), Filed how many events
	// they filed, and FilingTime how long they took. The filer runs
	// beside the writer, on the index's own file: no write waits for it
	// (until the fifty-eighth session the writer filed, holding the
	// write lock that long).
	Filings, Filed uint64
	FilingTime     time.Duration
	// AuditIndexBehind is how many audit events were past the index's
	// mark when this store's filer last filed (or the store opened it):
	// after an upgrade or a restore, what the background filing has left
	// to do.
	AuditIndexBehind int64
}

// WriterStats reports the writer's counters. Busy includes the group
// running now, up to this call.
func (db *DB) WriterStats() WriterStats {
	db.busyMu.Lock()
	busy := db.busy
	if !db.busySince.IsZero() {
		busy += time.Since(db.busySince)
	}
	db.busyMu.Unlock()
	begun, ended := db.gen.dataCommits()
	return WriterStats{Groups: db.groups.Load(), Members: db.members.Load(), Reruns: db.reruns.Load(),
		Pages: db.pages.Load(), Syncs: db.dur.syncs.Load(), Early: db.dur.earlyGroups.Load(),
		DataCommitsBegun: begun, DataCommitsEnded: ended, Yields: db.yields.Load(), Cuts: db.cuts.Load(), Busy: busy,
		Filings: db.filings.Load(), Filed: db.filed.Load(), FilingTime: time.Duration(db.filingNanos.Load()),
		AuditIndexBehind: db.auditBehind.Load()}
}

// WriteMetrics appends the writer's counters to w in Prometheus' text
// format (for /metrics).
func (db *DB) WriteMetrics(w io.Writer) {
	st := db.WriterStats()
	promtext.WriteCounters(w, []promtext.Counter{
		{Name: "custos_sqlite_commit_groups_total", Help: "Commit groups the SQLite writer ran.", Value: fmt.Sprint(st.Groups)},
		{Name: "custos_sqlite_group_members_total", Help: "Write requests in those groups.", Value: fmt.Sprint(st.Members)},
		{Name: "custos_sqlite_group_reruns_total", Help: "Groups run again: with savepoints after a member failed, or after another writer moved the audit log unannounced.", Value: fmt.Sprint(st.Reruns)},
		{Name: "custos_sqlite_pages_written_total", Help: "Database pages the SQLite writer wrote to the WAL.", Value: fmt.Sprint(st.Pages)},
		{Name: "custos_sqlite_wal_syncs_total", Help: "Syncs of the WAL that made commit groups durable.", Value: fmt.Sprint(st.Syncs)},
		{Name: "custos_sqlite_groups_answered_before_sync_total", Help: "Commit groups of audit events alone answered once committed, before their sync (read_audit_durability committed).", Value: fmt.Sprint(st.Early)},
		{Name: "custos_sqlite_data_commits_begun_total", Help: "Commits of data (anything but the audit log) begun by every process on the file.", Value: fmt.Sprint(st.DataCommitsBegun)},
		{Name: "custos_sqlite_data_commits_ended_total", Help: "Of those, commits ended; while fewer, none is answered before its sync.", Value: fmt.Sprint(st.DataCommitsEnded)},
		{Name: "custos_sqlite_writer_yields_total", Help: "Times the writer, having had the last turn at the write lock, let another process's waiting writer begin first.", Value: fmt.Sprint(st.Yields)},
		{Name: "custos_sqlite_writer_group_cuts_total", Help: "Commit groups ended early, after the members run so far, for another process's waiting writer; the rest led the next group.", Value: fmt.Sprint(st.Cuts)},
		{Name: "custos_sqlite_writer_busy_seconds_total", Help: "Time the writer spent on groups rather than waiting.", Value: fmt.Sprintf("%.6f", st.Busy.Seconds())},
		{Name: "custos_sqlite_audit_filings_total", Help: "Filings of audit events into the audit log's index.", Value: fmt.Sprint(st.Filings)},
		{Name: "custos_sqlite_audit_events_filed_total", Help: "Audit events those filings filed.", Value: fmt.Sprint(st.Filed)},
		{Name: "custos_sqlite_audit_filing_seconds_total", Help: "Time those filings took, on the audit index file beside the writer.", Value: fmt.Sprintf("%.6f", st.FilingTime.Seconds())},
	})
	promtext.WriteGauges(w, []promtext.Counter{
		{Name: "custos_sqlite_audit_index_behind_events", Help: "Audit events past the audit index's mark when this process last filed it: after an upgrade or a restore, the background filing's work left; otherwise under 1,024 a process.", Value: fmt.Sprint(st.AuditIndexBehind)},
	})
	if db.rc == nil {
		return
	}
	rc := db.ReadCacheStats()
	promtext.WriteCounters(w, []promtext.Counter{
		{Name: "custos_sqlite_read_cache_hits_total", Help: "Reads of a customer the read cache answered.", Value: fmt.Sprint(rc.Hits)},
		{Name: "custos_sqlite_read_cache_misses_total", Help: "Reads of a customer the read cache did not hold.", Value: fmt.Sprint(rc.Misses)},
		{Name: "custos_sqlite_read_cache_flushes_total", Help: "Times the read cache was emptied whole.", Value: fmt.Sprint(rc.Flushes)},
		{Name: "custos_sqlite_read_cache_warmed_total", Help: "Customers the warm-up after a start read into the read cache.", Value: fmt.Sprint(rc.Warmed)},
	})
}

// countPages adds the pages the write connection wrote to the WAL since
// the last call to the writer's count. A connection that cannot report
// them (not the modernc driver) adds nothing.
func (db *DB) countPages(conn *sql.Conn) {
	_ = conn.Raw(func(dc any) error {
		if st, ok := dc.(sqlite.DBStatus); ok {
			if n, _, err := st.Status(sqlite.DBStatusCacheWrite, true); err == nil && n > 0 {
				db.pages.Add(uint64(n))
			}
		}
		return nil
	})
}
