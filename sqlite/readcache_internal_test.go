package sqlite

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"custos"
)

// TestReadCacheNoLockOrder hammers the cache's fills, lookups and
// invalidations from many goroutines over few shards; it would hang if
// any path held two shard locks at once in different orders (the
// watchdog then fails it).
func TestReadCacheNoLockOrder(t *testing.T) {
	c := newReadCache(64, &sharedGen{p: new(uint64)})
	watchdog := time.AfterFunc(60*time.Second, func() { panic("TestReadCacheNoLockOrder: no progress in 60 s (deadlock)") })
	defer watchdog.Stop()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stamp := c.begin()
			for i := range 50_000 {
				if i%64 == 0 {
					stamp = c.begin() // a new View
				}
				id := custos.SubjectID(fmt.Sprint((i*31 + g*7) % 97))
				key := []byte(fmt.Sprint((i*17 + g) % 89))
				switch i % 5 {
				case 0:
					c.putSubject(stamp, &custos.StoredSubject{ID: id}, nil, nil)
				case 1, 2:
					c.putLookup(stamp, "mobile", key, id)
				case 3:
					c.getLookup("mobile", key)
				case 4:
					if g == 0 {
						c.invalidate(&invalidation{ids: map[custos.SubjectID]struct{}{id: {}}})
					}
				}
			}
		}()
	}
	wg.Wait()
}
