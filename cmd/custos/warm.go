package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"custos/internal/sqlutil"
	"custos/postgres"
	"custos/sqlite"
)

// ReadCacheSaveInterval is how often serve writes the list of customers
// in a SQLite node's read cache, for the next start to warm from
// (sqlite/warm.go); it is written when serve stops too. A crash loses at
// most this much of the list's news.
const ReadCacheSaveInterval = 5 * time.Minute

// warmLogEvery is how often a warm-up in progress logs how far it got.
const warmLogEvery = 10 * time.Second

// warmStore is a store whose read cache warms after a start: a SQLite
// node's from the list its last run left beside its file
// (sqlite/warm.go), a PostgreSQL node's from the audit log's latest reads
// and lookups (postgres/warm.go).
type warmStore interface {
	WarmReadCache(ctx context.Context, progress func(sqlutil.WarmStats)) (sqlutil.WarmStats, error)
}

// warmSaver is a warmStore that keeps its list itself (SQLite).
type warmSaver interface {
	SaveReadCacheList() (int, error)
}

// fromAuditLog reports whether db warms from the audit log (PostgreSQL),
// not from a list it keeps itself (SQLite, a warmSaver).
func fromAuditLog(db warmStore) bool {
	_, saves := db.(warmSaver)
	return !saves
}

// warmSource says where db's warm-up takes its list from, for the log.
func warmSource(db warmStore) string {
	if s, ok := db.(*sqlite.DB); ok {
		return s.WarmListPath()
	}
	return "the audit log's latest reads and lookups"
}

// nodeWarmStore is n's store as a warmStore, nil for none.
func nodeWarmStore(n *node) warmStore {
	switch {
	case n.sqlite != nil:
		return n.sqlite
	case n.pg != nil:
		return n.pg
	}
	return nil
}

var (
	_ warmStore = (*sqlite.DB)(nil)
	_ warmSaver = (*sqlite.DB)(nil)
	_ warmStore = (*postgres.DB)(nil)
)

// cacheWarmer warms a node's read cache in the background, and saves a
// SQLite node's list.
type cacheWarmer struct {
	db     warmStore
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	stats    sqlutil.WarmStats
	finished bool
}

// startCacheWarmer starts the warm-up; stop ends it. With db nil it does
// nothing.
func startCacheWarmer(ctx context.Context, db warmStore, logger *slog.Logger) *cacheWarmer {
	w := &cacheWarmer{db: db, logger: logger, done: make(chan struct{})}
	if db == nil {
		w.finished = true
		close(w.done)
		return w
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		var last time.Time
		st, err := db.WarmReadCache(ctx, func(st sqlutil.WarmStats) {
			w.mu.Lock()
			w.stats = st
			w.mu.Unlock()
			if last.IsZero() {
				last = time.Now()
				logger.Info("read cache warming", "listed", st.Listed, "list", warmSource(db))
			} else if time.Since(last) >= warmLogEvery {
				last = time.Now()
				logger.Info("read cache warming", "loaded", st.Loaded, "listed", st.Listed, "elapsed", st.Elapsed.Round(time.Millisecond))
			}
		})
		w.mu.Lock()
		// Stopped early, it did not finish; failed, it did: the cache
		// then holds what a later save should list, not a damaged list.
		w.stats, w.finished = st, ctx.Err() == nil
		w.mu.Unlock()
		switch {
		case err != nil && ctx.Err() != nil:
			logger.Info("read cache warm-up stopped", "loaded", st.Loaded, "listed", st.Listed, "elapsed", st.Elapsed.Round(time.Millisecond))
		case err != nil:
			logger.Warn("read cache warm-up failed; reads warm the cache as they come", "err", err, "loaded", st.Loaded)
		case st.Listed > 0:
			attrs := []any{"loaded", st.Loaded, "listed", st.Listed, "already", st.Cached, "gone", st.Gone, "no_room", st.Skipped}
			if fromAuditLog(db) {
				// PostgreSQL's cache answers lookups too, and the
				// warm-up loads their keys.
				attrs = append(attrs, "lookup_keys", st.Keys)
			}
			logger.Info("read cache warmed", append(attrs, "elapsed", st.Elapsed.Round(time.Millisecond))...)
		}
	}()
	return w
}

// Stats returns the warm-up's figures so far, and whether it finished.
func (w *cacheWarmer) Stats() (sqlutil.WarmStats, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats, w.finished
}

// save writes the list of cached customers. While a warm-up is still
// running, or after one that stopped early, it keeps the old list: the
// cache then holds only part of it, and a restart in the middle of a
// warm-up would lose the rest.
func (w *cacheWarmer) save() {
	saver, ok := w.db.(warmSaver)
	if !ok {
		return // none, or PostgreSQL: its list is the audit log
	}
	if _, finished := w.Stats(); !finished {
		w.logger.Info("read cache list kept: the warm-up from it did not finish")
		return
	}
	n, err := saver.SaveReadCacheList()
	if err != nil {
		w.logger.Warn("saving the read cache list failed", "err", err)
	} else if n > 0 {
		w.logger.Debug("read cache list saved", "customers", n)
	}
}

// stop ends the warm-up and waits for it.
func (w *cacheWarmer) stop() {
	if w.cancel != nil {
		w.cancel()
	}
	<-w.done
}

// benchWarm is what the read cache's warm-up did in a bench run (-warm).
type benchWarm struct {
	// FromAuditLog is set when the list was the audit log's latest reads
	// and lookups (PostgreSQL), not a list the last run left (SQLite).
	FromAuditLog bool `json:"from_audit_log,omitempty"`
	Listed       int  `json:"listed"`
	// LoadedAtSteps is how many customers it had read into the cache
	// when the first custos step began; Loaded how many by the end of
	// the run.
	LoadedAtSteps int `json:"loaded_at_steps"`
	Loaded        int `json:"loaded"`
	Gone          int `json:"gone,omitempty"`
	NoRoom        int `json:"no_room,omitempty"`
	// Seconds is how long it took; 0 if it had not finished by the end
	// of the run.
	Seconds float64 `json:"seconds,omitempty"`
}

func benchWarmAt(w *cacheWarmer) *benchWarm {
	b := &benchWarm{FromAuditLog: fromAuditLog(w.db)}
	b.update(w)
	b.LoadedAtSteps = b.Loaded
	return b
}

func (b *benchWarm) update(w *cacheWarmer) {
	st, finished := w.Stats()
	b.Listed, b.Loaded, b.Gone, b.NoRoom = st.Listed, st.Loaded, st.Gone, st.Skipped
	b.Seconds = 0
	if finished {
		b.Seconds = max(st.Elapsed.Seconds(), 1e-3)
	}
}

func (b *benchWarm) String() string {
	switch {
	case b.Listed == 0 && b.FromAuditLog:
		return "no granted reads or lookups in the audit log"
	case b.Listed == 0:
		return "no list beside the store (the first -warm run leaves one)"
	}
	done := "still running"
	if b.Seconds > 0 {
		done = fmt.Sprintf("finished in %.1f s", b.Seconds)
	}
	return fmt.Sprintf("%d of %d listed customers loaded when the steps began, %d by the end (%s; %d gone, %d without room)",
		b.LoadedAtSteps, b.Listed, b.Loaded, done, b.Gone, b.NoRoom)
}
