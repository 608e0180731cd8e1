package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"custos/sqlite"
)

// ReadCacheSaveInterval is how often serve writes the list of customers
// in a SQLite node's read cache, for the next start to warm from
// (sqlite/warm.go); it is written when serve stops too. A crash loses at
// most this much of the list's news.
const ReadCacheSaveInterval = 5 * time.Minute

// warmLogEvery is how often a warm-up in progress logs how far it got.
const warmLogEvery = 10 * time.Second

// cacheWarmer warms a SQLite node's read cache in the background from the
// list its last run left, and saves the list.
type cacheWarmer struct {
	db     *sqlite.DB
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	stats    sqlite.WarmStats
	finished bool
}

// startCacheWarmer starts the warm-up; stop ends it. With db nil (a
// PostgreSQL node) it does nothing.
func startCacheWarmer(ctx context.Context, db *sqlite.DB, logger *slog.Logger) *cacheWarmer {
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
		st, err := db.WarmReadCache(ctx, func(st sqlite.WarmStats) {
			w.mu.Lock()
			w.stats = st
			w.mu.Unlock()
			if last.IsZero() {
				last = time.Now()
				logger.Info("read cache warming", "listed", st.Listed, "list", db.WarmListPath())
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
			logger.Info("read cache warmed", "loaded", st.Loaded, "listed", st.Listed, "already", st.Cached,
				"gone", st.Gone, "no_room", st.Skipped, "elapsed", st.Elapsed.Round(time.Millisecond))
		}
	}()
	return w
}

// Stats returns the warm-up's figures so far, and whether it finished.
func (w *cacheWarmer) Stats() (sqlite.WarmStats, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats, w.finished
}

// save writes the list of cached customers. While a warm-up is still
// running, or after one that stopped early, it keeps the old list: the
// cache then holds only part of it, and a restart in the middle of a
// warm-up would lose the rest.
func (w *cacheWarmer) save() {
	if w.db == nil {
		return
	}
	if _, finished := w.Stats(); !finished {
		w.logger.Info("read cache list kept: the warm-up from it did not finish")
		return
	}
	n, err := w.db.SaveReadCacheList()
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
	Listed int `json:"listed"`
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
	b := &benchWarm{}
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
	if b.Listed == 0 {
		return "no list beside the store (the first -warm run leaves one)"
	}
	done := "still running"
	if b.Seconds > 0 {
		done = fmt.Sprintf("finished in %.1f s", b.Seconds)
	}
	return fmt.Sprintf("%d of %d listed customers loaded when the steps began, %d by the end (%s; %d gone, %d without room)",
		b.LoadedAtSteps, b.Listed, b.Loaded, done, b.Gone, b.NoRoom)
}
