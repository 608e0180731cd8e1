package sqlite

import (
	"database/sql"
	"fmt"
	"io"
	"time"

	"modernc.org/sqlite"
)

// WriterStats counts the group-commit writer's work since the store was
// opened: how many commit groups it ran, how many Update calls they held,
// how many groups ran again with savepoints after a member failed, and
// how long the writer was busy with groups (running them, committing and
// syncing, answering, and the WAL reset between two groups) rather than
// waiting for requests. Busy time over wall time near 1 means writes
// queue for the writer; the mean group size says how many writes share
// one commit and its fsync.
//
// Pages is how many database pages the writer wrote to the WAL (SQLite's
// SQLITE_DBSTATUS_CACHE_WRITE): each is a 4 KiB frame written with two
// system calls at commit, so pages per write is what a commit costs in
// I/O (BENCHMARKS.md, sixth session).
type WriterStats struct {
	Groups, Members, Reruns, Pages uint64
	Busy                           time.Duration
}

// WriterStats reports the writer's counters.
func (db *DB) WriterStats() WriterStats {
	return WriterStats{Groups: db.groups.Load(), Members: db.members.Load(), Reruns: db.reruns.Load(),
		Pages: db.pages.Load(), Busy: time.Duration(db.busyNanos.Load())}
}

// WriteMetrics appends the writer's counters to w in Prometheus' text
// format (for /metrics).
func (db *DB) WriteMetrics(w io.Writer) {
	st := db.WriterStats()
	for _, m := range []struct{ name, help, value string }{
		{"custos_sqlite_commit_groups_total", "Commit groups the SQLite writer ran.", fmt.Sprint(st.Groups)},
		{"custos_sqlite_group_members_total", "Write requests in those groups.", fmt.Sprint(st.Members)},
		{"custos_sqlite_group_reruns_total", "Groups run again with savepoints after a member failed.", fmt.Sprint(st.Reruns)},
		{"custos_sqlite_pages_written_total", "Database pages the SQLite writer wrote to the WAL.", fmt.Sprint(st.Pages)},
		{"custos_sqlite_writer_busy_seconds_total", "Time the writer spent on groups rather than waiting.", fmt.Sprintf("%.6f", st.Busy.Seconds())},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %s\n", m.name, m.help, m.name, m.name, m.value)
	}
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
