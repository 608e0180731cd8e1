package sqlite

import (
	"context"
	"testing"
)

// TestTryLeader: one caller at a time leads a job among the stores on a
// file (two stores stand for two processes, as a serving node and
// `custos retention run`), another job is apart, and the leadership
// passes on at release or Close.
func TestTryLeader(t *testing.T) {
	ctx := context.Background()
	a := openInternal(t)
	b := openSecond(t, a)

	release, ok, err := a.TryLeader(ctx, "custos:retention")
	if err != nil || !ok {
		t.Fatalf("first leader: %v, %v", ok, err)
	}
	if _, ok, err := b.TryLeader(ctx, "custos:retention"); err != nil || ok {
		t.Errorf("second process while the first leads: ok %v, %v; want not ok", ok, err)
	}
	if _, ok, err := a.TryLeader(ctx, "custos:retention"); err != nil || ok {
		t.Errorf("another caller in the leading process: ok %v, %v; want not ok", ok, err)
	}
	other, ok, err := b.TryLeader(ctx, "custos:audit-checkpoint")
	if err != nil || !ok {
		t.Errorf("another job: ok %v, %v; want ok", ok, err)
	} else {
		other()
	}
	release()
	release() // idempotent
	rb, ok, err := b.TryLeader(ctx, "custos:retention")
	if err != nil || !ok {
		t.Fatalf("after release: ok %v, %v; want ok", ok, err)
	}
	_ = rb // let go by Close
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ra, ok, err := a.TryLeader(ctx, "custos:retention")
	if err != nil || !ok {
		t.Fatalf("after the leading store closed: ok %v, %v; want ok", ok, err)
	}
	ra()
	rb() // after Close: nothing left to let go
}
