package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxCachedStmts bounds the prepared statements kept per pool. custos's
// SQL is constant text, so a few hundred statements cover every query;
// statements built at run time beyond the bound simply run unprepared.
const maxCachedStmts = 512

// stmtCache keeps prepared statements for one pool, so that a statement
// is compiled once per connection instead of once per execution (which
// was about a fifth of all CPU on the read and create paths; see
// BENCHMARKS.md "Where the time goes").
//
// Statements are prepared lazily and never inside a transaction: a query
// that misses is run unprepared and noted; prepareWanted, called when the
// caller holds no connection of the pool (the writer between commit
// groups, View after its transaction), prepares the noted queries on the
// pool. Preparing inside a transaction could wait for a connection that
// the pool's other transactions hold — the write pool has only one — and
// deadlock. Each transaction then binds the pool-level statement to its
// own connection with Tx.StmtContext, which database/sql compiles once per
// connection and reuses afterwards.
type stmtCache struct {
	pool    *sql.DB
	timeout time.Duration

	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt
	closed bool

	wantMu sync.Mutex
	want   map[string]struct{}
	// wanted is len(want), read without the lock on every View.
	wanted atomic.Int64
}

func newStmtCache(pool *sql.DB, timeout time.Duration) *stmtCache {
	return &stmtCache{pool: pool, timeout: timeout, stmts: map[string]*sql.Stmt{}, want: map[string]struct{}{}}
}

// cacheable reports whether query is one statement worth keeping:
// scripts (several statements) are run as they are.
func cacheable(query string) bool {
	q := strings.TrimSpace(query)
	return !strings.Contains(strings.TrimSuffix(q, ";"), ";")
}

// get returns the prepared statement for query, or nil after noting that
// it is wanted.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.RLock()
	s, n := c.stmts[query], len(c.stmts)
	c.mu.RUnlock()
	if s != nil || n >= maxCachedStmts || !cacheable(query) {
		return s
	}
	c.wantMu.Lock()
	if len(c.want) < maxCachedStmts {
		c.want[query] = struct{}{}
		c.wanted.Store(int64(len(c.want)))
	}
	c.wantMu.Unlock()
	return nil
}

// prepareWanted prepares the queries noted since the last call. The caller
// must hold no connection of the pool. A query that fails to prepare is
// dropped (it keeps running unprepared, and its error shows there).
func (c *stmtCache) prepareWanted() {
	c.wantMu.Lock()
	if len(c.want) == 0 {
		c.wantMu.Unlock()
		return
	}
	want := c.want
	c.want = map[string]struct{}{}
	c.wanted.Store(0)
	c.wantMu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	for q := range want {
		c.mu.RLock()
		_, have := c.stmts[q]
		c.mu.RUnlock()
		if have {
			continue
		}
		s, err := c.pool.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.closed || len(c.stmts) >= maxCachedStmts || c.stmts[q] != nil {
			c.mu.Unlock()
			s.Close()
			continue
		}
		c.stmts[q] = s
		c.mu.Unlock()
	}
}

// pending reports whether prepareWanted has work.
func (c *stmtCache) pending() bool { return c.wanted.Load() > 0 }

// close closes every statement; later prepares are closed at once.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for q, s := range c.stmts {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(c.stmts, q)
	}
	return errors.Join(errs...)
}

// txStmt returns query's prepared statement bound to tx, or nil when the
// query is not prepared yet (it then runs as plain text).
func (tx *Tx) txStmt(ctx context.Context, query string) *sql.Stmt {
	if tx.cache == nil {
		return nil
	}
	if s, ok := tx.stmts[query]; ok {
		return s
	}
	ps := tx.cache.get(query)
	if ps == nil {
		return nil
	}
	s := tx.tx.StmtContext(ctx, ps)
	if tx.stmts == nil {
		tx.stmts = map[string]*sql.Stmt{}
	}
	tx.stmts[query] = s
	return s
}
