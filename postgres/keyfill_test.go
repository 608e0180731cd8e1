package postgres_test

import (
	"fmt"
	"testing"

	"custos"
	"custos/postgres"
)

// TestKeyFillBoundedAndClosed: the key fill's queue is bounded (past it a
// customer is dropped, counted), and Close stops its goroutine: after
// Close nothing waits, nothing runs, and a read's note queues nothing
// (postgres/keyfill.go).
func TestKeyFillBoundedAndClosed(t *testing.T) {
	db, err := postgres.Open(t.Context(), MustCreateSchema(t), postgres.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	const over = 10
	ids := make([]custos.SubjectID, postgres.MaxKeyFillQueue+over)
	for i := range ids {
		ids[i] = custos.SubjectID(fmt.Sprintf("sub_fill%d", i))
	}
	release := db.HoldKeyFill() // notes queue, nothing drains them yet
	db.NoteKeys(ids...)
	if queued, _, dropped := db.KeyFill(); queued != postgres.MaxKeyFillQueue || dropped != over {
		t.Fatalf("after %d notes: %d queued, %d dropped; want %d and %d", len(ids), queued, dropped, postgres.MaxKeyFillQueue, over)
	}
	release()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if queued, running, _ := db.KeyFill(); queued != 0 || running {
		t.Fatalf("after Close: %d queued, running %v; want nothing", queued, running)
	}
	db.NoteKeys(ids[0])
	if queued, running, _ := db.KeyFill(); queued != 0 || running {
		t.Fatalf("a note after Close: %d queued, running %v; want nothing", queued, running)
	}
}
