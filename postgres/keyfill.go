package postgres

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"custos"
)

// A lookup is answered from the read cache only when the cache holds the
// key it asks for (readCache.byKey), and until the sixty-second session a
// key went in only with a lookup that asked for it: a customer read by id,
// and so in the cache, was still looked up from the tables, a round trip,
// the first time each of their keys was asked for (BENCHMARKS.md: a whole
// run's lookup step at c=16 answered 64.6 % from the cache, after read
// steps had put every customer in it). So when a read by id puts a
// customer in the cache, the node now loads that customer's blind-index
// keys too, in the background: a keyFiller gathers the customers and one
// goroutine reads their keys, up to maxReadBatch customers a statement
// (loadKeys, the warm-up's), putting each key where the cache has room
// for it, evicting nothing, tagged with the gen its statement saw. A key
// is used only with an entry for its owner of the same gen (byKey), so a
// key loaded before a change answers no lookup after it.
//
// The cache has room for keysPerCustomer keys a customer it holds (the
// default catalog's lookup fields), in a map without pointers
// (readcache.go): a full cache's customers' keys fit. Past that room the
// fill puts nothing, and lookups put their own keys as before, evicting.
//
// The keys do not delay the read: it is answered before they are asked
// for. They cost the machine a statement for many reads: the goroutine
// waits keyFillLinger before each statement, unless a statement's worth
// of customers already waits, so that one statement carries the keys of
// many reads' customers even when the reads come one at a time (at 1,000
// misses a second, about ten).

// keyFillLinger is how long the key fill gathers customers before a
// statement with fewer than maxReadBatch.
const keyFillLinger = 10 * time.Millisecond

// maxKeyFillQueue bounds the customers waiting for their keys; past it a
// customer's keys are not loaded (a lookup then fills its own).
const maxKeyFillQueue = 4096

// keyFiller loads the keys of customers read by id (see above).
type keyFiller struct {
	db *DB // its read cache is the one filled

	mu      sync.Mutex
	queue   []custos.SubjectID
	running bool // a goroutine is draining the queue
	ctx     context.Context
	stop    context.CancelFunc // by Close: no more statements
	done    sync.WaitGroup

	// filled counts the keys put, dropped the customers not queued (a
	// full queue) or whose statement failed.
	filled, dropped atomic.Int64
}

func newKeyFiller(db *DB) *keyFiller {
	ctx, stop := context.WithCancel(context.Background())
	return &keyFiller{db: db, ctx: ctx, stop: stop}
}

// note queues id's keys to be loaded, and starts a goroutine to load them
// if none runs.
func (f *keyFiller) note(id custos.SubjectID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return // closed
	}
	if len(f.queue) >= maxKeyFillQueue {
		f.dropped.Add(1)
		return
	}
	f.queue = append(f.queue, id)
	if !f.running {
		f.running = true
		f.done.Add(1)
		go f.run()
	}
}

// run loads the queue's keys, a statement at a time, until the queue is
// empty or the filler closed.
func (f *keyFiller) run() {
	defer f.done.Done()
	for {
		if f.waiting() < maxReadBatch {
			select {
			case <-time.After(keyFillLinger):
			case <-f.ctx.Done():
			}
		}
		batch := f.take()
		if batch == nil {
			return
		}
		n, err := f.db.loadKeys(f.ctx, f.db.rc, batch)
		f.filled.Add(int64(n))
		if err != nil {
			f.dropped.Add(int64(len(batch)))
		}
	}
}

// waiting returns how many customers wait for their keys.
func (f *keyFiller) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queue)
}

// take removes up to maxReadBatch customers from the queue, or marks the
// goroutine stopped and returns nil when none wait or the filler closed.
func (f *keyFiller) take() []custos.SubjectID {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 || f.ctx.Err() != nil {
		f.queue, f.running = nil, false
		return nil
	}
	n := min(len(f.queue), maxReadBatch)
	batch := slices.Clone(f.queue[:n])
	f.queue = append(f.queue[:0], f.queue[n:]...)
	return batch
}

// close stops the filler and waits for its statement, if one is on its
// way, to end.
func (f *keyFiller) close() {
	f.mu.Lock()
	f.stop()
	f.mu.Unlock()
	f.done.Wait()
}
