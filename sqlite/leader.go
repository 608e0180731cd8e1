package sqlite

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
)

// TryLeader tries to make this caller the leader for job (a background
// job's name, such as "custos:retention") among every process on the
// database file, so that one of them runs it at a time: a serving node's
// schedule and `custos retention run` beside it, say. It does not wait:
// ok is false while another process, or another caller in this one,
// leads.
//
// The leadership is an exclusive flock on a file of the job's own beside
// the database (DB-job-NAME.lock, empty), held until release is called or
// the store is closed. The kernel lets it go when the process dies, so
// the next caller takes over; a leader should do work that is safe to
// resume. release is idempotent and safe to call concurrently.
//
// Without it two retention sweeps on one file, a serving node's and
// `custos retention run`'s, ran side by side, each saving its own cursor
// over the other's (core.SweepRetention): two that resumed one interrupted
// run each finished with a signed certificate of that run, both counting
// what it had done before the interruption.
func (db *DB) TryLeader(ctx context.Context, job string) (release func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, internal("leader", err)
	}
	if err := db.checkOpen(); err != nil {
		return nil, false, err // closeLeaders has run: nothing would let it go
	}
	f, err := os.OpenFile(db.path+"-job-"+jobFileName(job)+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, internal("leader", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		cerr := f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, internal("leader", errors.Join(err, cerr))
	}
	db.leadMu.Lock()
	if db.leaders == nil {
		db.leaders = map[*os.File]struct{}{}
	}
	db.leaders[f] = struct{}{}
	db.leadMu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { db.unlead(f) }) }, true, nil
}

// unlead closes a leader's lock file, which lets the leadership go.
func (db *DB) unlead(f *os.File) {
	db.leadMu.Lock()
	_, held := db.leaders[f]
	delete(db.leaders, f)
	db.leadMu.Unlock()
	if held {
		_ = f.Close()
	}
}

// closeLeaders lets every leadership of this store go (Close).
func (db *DB) closeLeaders() {
	db.leadMu.Lock()
	fs := db.leaders
	db.leaders = nil
	db.leadMu.Unlock()
	for f := range fs {
		_ = f.Close()
	}
}

// jobFileName is job made fit for a file name: letters, digits and dashes.
func jobFileName(job string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, job)
}
