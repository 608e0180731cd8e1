package sqlutil

import "time"

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
