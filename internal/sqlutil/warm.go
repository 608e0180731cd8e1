package sqlutil

import (
	"context"
	"sync"
	"time"

	"custos"
)

// WarmStats is what a warm-up of a store's read cache after a start did
// (sqlite/warm.go, postgres/warm.go).
type WarmStats struct {
	// Listed is how many customers the list named (SQLite: the list
	// beside the store; PostgreSQL: the distinct customers of the audit
	// log's latest reads and lookups); Loaded how many the warm-up read
	// into the cache; Cached how many were there already (read by live
	// traffic first); Gone how many the store no longer holds (erased
	// since the list was written); Skipped how many found no room: past
	// the cache's size (a smaller --read-cache than the process that
	// wrote the list had), or in a part of the cache that live reads or
	// the list had filled. (Each process hashes ids to the cache's shards
	// with a seed of its own, so a list as long as the cache never fits
	// it exactly.)
	Listed, Loaded, Cached, Gone, Skipped int
	// Keys is how many blind-index keys of looked-up customers the
	// warm-up put in the cache beside them (PostgreSQL, whose cache
	// answers lookups too; SQLite's reads its lookups' keys from its
	// file).
	Keys    int
	Elapsed time.Duration
}

// Room is what a read cache's shard holds for a customer the warm-up
// would put there (a warm-up evicts nothing).
type Room int

const (
	RoomFree   Room = iota // room for the entry (or an entry it may replace)
	RoomCached             // the customer's entry, current
	RoomFull               // no room
)

// add adds a batch's counts to st's.
func (st *WarmStats) add(b WarmStats) {
	st.Loaded += b.Loaded
	st.Cached += b.Cached
	st.Gone += b.Gone
	st.Skipped += b.Skipped
	st.Keys += b.Keys
}

// WarmBatches runs a store's warm-up over ids: batch reads each run of up
// to size of them into the cache and counts what it did, workers batches
// at a time. Each batch's counts are added to st's, whose Listed (and
// Skipped, for what the list held beyond the cache) the store has set,
// and progress (when not nil) is called after each batch with the figures
// so far, from one goroutine at a time. It stops when ids end, at the
// first batch's error, or when ctx ends, and returns the figures, with
// Elapsed since start, and that error or ctx's.
func WarmBatches(ctx context.Context, ids []custos.SubjectID, size, workers int, st WarmStats, start time.Time,
	batch func([]custos.SubjectID) (WarmStats, error), progress func(WarmStats)) (WarmStats, error) {
	var (
		mu    sync.Mutex
		next  int
		first error
	)
	// take hands out the next batch, or none once the list is done, the
	// context ended or a worker failed.
	take := func() []custos.SubjectID {
		mu.Lock()
		defer mu.Unlock()
		if next >= len(ids) || first != nil || ctx.Err() != nil {
			return nil
		}
		b := ids[next:min(next+size, len(ids))]
		next += len(b)
		return b
	}
	done := func(b WarmStats, err error) {
		mu.Lock()
		defer mu.Unlock()
		st.add(b)
		if err != nil && first == nil {
			first = err
		}
		st.Elapsed = time.Since(start)
		if progress != nil {
			progress(st)
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := take(); b != nil; b = take() {
				done(batch(b))
			}
		})
	}
	wg.Wait()
	st.Elapsed = time.Since(start)
	if first == nil {
		first = ctx.Err()
	}
	return st, first
}
