package postgres

import (
	"context"
	"testing"
	"time"

	"custos"
)

// TestJoinLate: a group of read audits gathered while another writer's end
// is on its way takes the read audits that arrive until that end is
// answered (latejoin.go); a group holding any other write, or gathered with
// no end on its way, goes at once.
func TestJoinLate(t *testing.T) {
	read := func() *writeReq {
		ctx, _ := custos.WithReadProof(context.Background())
		return &writeReq{ctx: ctx}
	}
	write := func() *writeReq { return &writeReq{ctx: context.Background()} }
	newDB := func() *DB {
		return &DB{reqs: make(chan *writeReq, 2*MaxGroup), closed: make(chan struct{}), joinWait: time.Hour}
	}

	t.Run("no end on its way", func(t *testing.T) {
		db := newDB()
		db.reqs <- read()
		if got := db.joinLate([]*writeReq{read()}); len(got) != 1 {
			t.Fatalf("group of %d, want 1: nothing to wait for", len(got))
		}
	})

	t.Run("waits for the end, taking reads", func(t *testing.T) {
		db := newDB()
		db.ends.begin()
		joined := make(chan []*writeReq)
		go func() { joined <- db.joinLate([]*writeReq{read()}) }()
		for range 3 {
			db.reqs <- read()
		}
		select {
		case g := <-joined:
			t.Fatalf("returned a group of %d before the end was answered", len(g))
		case <-time.After(10 * time.Millisecond):
		}
		answered := db.ends.busy()
		db.ends.end()
		select {
		case <-answered:
		default:
			t.Fatal("the last end answered did not close the channel waiters wait on")
		}
		if got := <-joined; len(got) != 4 {
			t.Fatalf("group of %d, want 4: the first and the three that came during the end", len(got))
		}
		if db.ends.busy() != nil {
			t.Fatal("an end is counted on its way after the last was answered")
		}
	})

	t.Run("another write stops the wait", func(t *testing.T) {
		db := newDB()
		db.joinWait = 50 * time.Millisecond // a wait past the write shows as a longer group
		db.ends.begin()
		defer db.ends.end()
		db.reqs <- read()
		db.reqs <- write()
		db.reqs <- read()
		got := db.joinLate([]*writeReq{read()})
		if len(got) != 3 || readAudit(got[2]) {
			t.Fatalf("group of %d, want 3 ending with the write", len(got))
		}
		db.reqs <- read()
		if got := db.joinLate([]*writeReq{write(), read()}); len(got) != 2 {
			t.Fatalf("a group holding a write took %d, want it sent as it was", len(got))
		}
	})

	t.Run("bounded", func(t *testing.T) {
		joined := make(chan []*writeReq)
		db := newDB()
		db.joinWait = 100 * time.Millisecond // a group past MaxGroup shows as too long
		db.ends.begin()
		defer db.ends.end()
		for range MaxGroup + 3 {
			db.reqs <- read()
		}
		if got := db.joinLate([]*writeReq{read()}); len(got) != MaxGroup {
			t.Fatalf("group of %d, want MaxGroup (%d)", len(got), MaxGroup)
		}
		// An end never answered holds a group joinWait, no longer.
		db2 := newDB()
		db2.joinWait = time.Millisecond
		db2.ends.begin()
		defer db2.ends.end()
		go func() { joined <- db2.joinLate([]*writeReq{read()}) }()
		select {
		case got := <-joined:
			if len(got) != 1 {
				t.Fatalf("group of %d, want 1", len(got))
			}
		case <-time.After(time.Minute):
			t.Fatal("an end never answered held a group past its joinWait")
		}
		db3 := newDB()
		db3.ends.begin()
		defer db3.ends.end()
		close(db3.closed)
		if got := db3.joinLate([]*writeReq{read()}); len(got) != 1 {
			t.Fatalf("closed: group of %d, want 1", len(got))
		}
	})
}
