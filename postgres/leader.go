package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
)

// leader is one job's leadership: a session-level advisory lock held on a
// connection set apart from the pool until release.
type leader struct {
	db   *DB
	conn *sql.Conn
	job  string
	ctx  context.Context // TryLeader's values without its cancellation, for the unlock
	once sync.Once
}

// TryLeader tries to make this node the leader for job (a background job
// name such as "retention"), so that of N nodes on one database exactly
// one runs it. It does not wait: ok is false while another node — or
// another caller on this one — leads.
//
// The leadership is pg_try_advisory_lock(hashtext(job)), a session-level
// lock, held on a dedicated connection (counted in Options.MaxConns) until
// release is called or the DB is closed. If the process dies or loses its
// connection, PostgreSQL ends the session and frees the lock, so another
// node's next TryLeader takes over; a leader should therefore do work that
// is safe to repeat. release is idempotent and safe to call concurrently.
// Two job names whose hashes collide share one lock.
func (db *DB) TryLeader(ctx context.Context, job string) (release func(), ok bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	conn, err := db.pool.Conn(cctx)
	if err != nil {
		return nil, false, internal("leader: connect", err)
	}
	var got bool
	if err := conn.QueryRowContext(cctx, `SELECT pg_try_advisory_lock(hashtext(current_setting('search_path') || '|' || $1))`, job).Scan(&got); err != nil {
		// The lock may have been granted and the reply lost: end the
		// session rather than pool a connection that might hold it.
		discard(conn)
		return nil, false, internal("leader", err)
	}
	if !got {
		if err := conn.Close(); err != nil {
			return nil, false, internal("leader: release", err)
		}
		return nil, false, nil
	}
	l := &leader{db: db, conn: conn, job: job, ctx: context.WithoutCancel(ctx)}
	db.mu.Lock()
	closed := db.leaders == nil
	if !closed {
		db.leaders[l] = struct{}{}
	}
	db.mu.Unlock()
	if closed {
		l.release()
		return nil, false, internal("leader", errors.New("store closed"))
	}
	return l.release, true, nil
}

// release gives the leadership up: it unlocks, and returns the connection
// to the pool; if the unlock fails it ends the session instead, which
// frees the lock as surely.
func (l *leader) release() {
	l.once.Do(func() {
		l.db.mu.Lock()
		delete(l.db.leaders, l)
		l.db.mu.Unlock()

		ctx, cancel := context.WithTimeout(l.ctx, l.db.timeout)
		defer cancel()
		var unlocked bool
		err := l.conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock(hashtext(current_setting('search_path') || '|' || $1))`, l.job).Scan(&unlocked)
		if err != nil || !unlocked {
			discard(l.conn)
			return
		}
		if err := l.conn.Close(); err != nil {
			discard(l.conn)
		}
	})
}

// discard closes conn's driver connection instead of returning it to the
// pool, ending the session and every session lock it holds: a function
// given to Raw that returns driver.ErrBadConn makes database/sql do exactly
// that. Raw then hands that error back, or sql.ErrConnDone if conn was
// closed already; either way the session is gone, so neither is reported.
func discard(conn *sql.Conn) {
	err := conn.Raw(func(any) error { return driver.ErrBadConn })
	if err == nil || errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return
	}
	// Raw returns nothing else today; should it, closing is what is left.
	if cerr := conn.Close(); cerr != nil {
		return
	}
}

// Leading reports whether this node still leads job: its lock's session
// must still be alive (a restarted or failed-over database, or a killed
// backend, ends the session and frees the lock for another node). A
// leadership whose session is gone is released, so the caller can try for
// it again with TryLeader.
func (db *DB) Leading(ctx context.Context, job string) bool {
	db.mu.Lock()
	var l *leader
	for x := range db.leaders {
		if x.job == job {
			l = x
			break
		}
	}
	db.mu.Unlock()
	if l == nil {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	var one int
	if err := l.conn.QueryRowContext(cctx, `SELECT 1`).Scan(&one); err != nil {
		l.release()
		return false
	}
	return true
}
