package postgres

import (
	"sync"
	"time"

	"custos"
	"custos/internal/queue"
)

// A read's audit group sends no statement before its end (the read's data
// came from a Glance): its members only append events, and the group's
// end takes the append lock, chains them and commits in one round trip
// (serverchain.go). With two writers, such a group gathered while the
// other writer's end held the lock was sent at once, its members fixed,
// to wait for the lock inside PostgreSQL; a read arriving meanwhile waited
// for that hold to end, for the waiting group's hold and then for its
// own: about two and a half holds. So a group of read audits alone,
// gathered while another group's end of this node is on its way, waits
// here instead, taking the reads that arrive, until that end is answered
// (or DB.joinWait, lateJoinWait, has passed). A read then waits for about
// one hold and a half, and groups are larger (BENCHMARKS.md, sixty-third
// session). A group holding any other write goes at once: its members'
// statements are better run while the other end holds the lock.

// lateJoinWait bounds how long a group of read audits waits for another
// writer's end before it is sent anyway.
const lateJoinWait = 10 * time.Millisecond

// endWatch counts this node's group ends on their way (runGroup), and
// closes done when the last is answered.
type endWatch struct {
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func (w *endWatch) begin() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.done = make(chan struct{})
	}
	w.n++
}

func (w *endWatch) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n--; w.n == 0 {
		close(w.done)
	}
}

// busy returns a channel closed once no end is on its way, or nil when
// none is.
func (w *endWatch) busy() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		return nil
	}
	return w.done
}

// readAudit reports whether r audits a read (core's provenRead puts a
// ReadProof in its context): it sends no statement before its end.
func readAudit(r *writeReq) bool { return custos.ReadProofFrom(r.ctx) != nil }

// joinLate is the wait described above: it returns group with the
// requests that arrived while another writer's end was on its way.
func (db *DB) joinLate(group []*writeReq) []*writeReq {
	for _, r := range group {
		if !readAudit(r) {
			return group
		}
	}
	busy := db.ends.busy()
	if busy == nil {
		return group
	}
	db.lateJoins.Add(1)
	timer := time.NewTimer(db.joinWait)
	defer timer.Stop()
	for len(group) < MaxGroup {
		select {
		case r := <-db.reqs:
			group = append(group, r)
			db.lateJoined.Add(1)
			if !readAudit(r) {
				return group
			}
		case <-busy:
			had := len(group)
			group = queue.Gather(db.reqs, group, MaxGroup, 0)
			db.lateJoined.Add(int64(len(group) - had))
			return group
		case <-timer.C:
			return group
		case <-db.closed:
			return group
		}
	}
	return group
}
