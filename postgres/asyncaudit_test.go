package postgres_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"custos"
	"custos/postgres"
)

// noteCommitSettings makes the server record, for every audit event,
// the synchronous_commit its transaction commits with and the
// transaction's id: a deferred constraint trigger on audit_events runs at
// COMMIT, after every statement of the transaction (a SET LOCAL sent
// after the events' insert included). It returns a reader of those
// records: request id → setting, and the ids of the transactions that
// committed with it off.
func noteCommitSettings(t *testing.T, db *postgres.DB) func() (map[string]string, int) {
	t.Helper()
	for _, q := range []string{
		`CREATE TABLE commit_settings (request_id text, setting text, xid text)`,
		`CREATE FUNCTION note_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO commit_settings VALUES (NEW.request_id, current_setting('synchronous_commit'), pg_current_xact_id()::text);
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER note_commit_setting AFTER INSERT ON audit_events
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION note_commit_setting()`,
	} {
		if _, err := db.Pool().ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return func() (map[string]string, int) {
		t.Helper()
		rows, err := db.Pool().QueryContext(t.Context(), `SELECT request_id, setting, xid FROM commit_settings`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		settings, off := map[string]string{}, map[string]bool{}
		for rows.Next() {
			var req, setting, xid string
			if err := rows.Scan(&req, &setting, &xid); err != nil {
				t.Fatal(err)
			}
			settings[req] = setting
			if setting == "off" {
				off[xid] = true
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return settings, len(off)
	}
}

// auditOnly runs one Update on db whose member sends no statement and
// appends an audit event for req at the end, with a checkpoint at every
// every-th event (0: none), as a read's Update does.
func auditOnly(t *testing.T, db *postgres.DB, req string, every int64) {
	t.Helper()
	err := db.Update(t.Context(), func(tx custos.Tx) error {
		tx.(interface{ NoteCheckpointEvery(int64) }).NoteCheckpointEvery(every)
		appendSignedAtEnd(t, tx, req, every)
		return nil
	})
	if err != nil {
		t.Fatalf("Update %s: %v", req, err)
	}
}

// TestReadAuditCommitted: with Options.ReadAuditCommitted a group that
// writes nothing but audit events commits with synchronous_commit off,
// as the server itself records at the commit, on every way a group ends:
// in one round trip; the usual way with its events sent with the COMMIT
// (the node's hint put a checkpoint in the group, the head did not) or
// before it (a checkpoint's insert flushes them); and the usual way after
// the one-round-trip end fell back (a checkpoint only the server found
// due). A group in which a member wrote commits
// synchronously, also when it shares its group with audit-only members;
// so does every group of a node without the option. The chain and the
// checkpoints stay whole, and GroupStats.Async counts the transactions
// the server saw commit with it off.
func TestReadAuditCommitted(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true, ReadAuditCommitted: true})
	b := MustOpen(t, url, postgres.Options{Migrate: true})
	read := noteCommitSettings(t, a)

	// Every third event has a checkpoint, and each node's hint stays
	// behind while the other appends. a1, a2, a5 and a10 end in one
	// round trip. At a4 a's hint (2) puts a checkpoint in the group, so
	// it ends the usual way, where the head (3, b's) does not: its event
	// goes with the COMMIT. At a6 the checkpoint is in both, and its
	// insert sends the event first. At a9 only the server finds it due
	// (a's hint is 6): a falls back.
	const every = 3
	var want []string
	for _, s := range []struct {
		db  *postgres.DB
		req string
	}{{a, "a1"}, {a, "a2"}, {b, "b3"}, {a, "a4"}, {a, "a5"}, {a, "a6"}, {b, "b7"}, {b, "b8"}, {a, "a9"}, {a, "a10"}} {
		auditOnly(t, s.db, s.req, every)
		want = append(want, s.req)
	}
	// A write with its audit event, on a.
	appendAs(t, a, "w11")
	want = append(want, "w11")
	if got := checkChain(t, a); !slices.Equal(got, want) {
		t.Fatalf("chain %v, want %v", got, want)
	}
	settings, offTxs := read()
	for _, req := range want {
		wantSetting := "on"
		if req[0] == 'a' {
			wantSetting = "off"
		}
		if settings[req] != wantSetting {
			t.Errorf("%s committed with synchronous_commit %q, want %q", req, settings[req], wantSetting)
		}
	}
	if st := a.GroupStats(); st.Async != int64(offTxs) || st.Async != 7 || st.OneTrip != 6 || st.OneTripFellBack != 1 {
		// Sent in one round trip: a1, a2, a5, a9 (which fell back), a10, w11.
		t.Errorf("node a: %d groups counted async, %d seen so by the server, %d sent in one round trip, %d fell back; want 7, 7, 6 and 1",
			st.Async, offTxs, st.OneTrip, st.OneTripFellBack)
	}
	if st := b.GroupStats(); st.Async != 0 {
		t.Errorf("node b (without the option): %d groups counted async, want 0", st.Async)
	}
	if seqs := checkpointSeqs(t, a); !slices.Equal(seqs, []int64{3, 6, 9}) {
		t.Errorf("checkpoints at %v, want [3 6 9]", seqs)
	}

	// Writers and readers at once on a: groups mix them, and no write
	// may commit asynchronously, whatever shares its group. The readers
	// then read on a while after the writers are done, so that some
	// groups certainly hold reads alone (while all six run, each group
	// may hold a write: all are answered together and ask again).
	async0 := a.GroupStats().Async
	var (
		wg, writers sync.WaitGroup
		writes      []string
		mu          sync.Mutex
	)
	writers.Add(3)
	for g := range 6 {
		wg.Go(func() {
			n := 20 // a reader's: 15 beside the writers, 5 after
			if g%2 == 0 {
				n = 15
				defer writers.Done()
			}
			for i := range n {
				if i == 15 {
					writers.Wait()
				}
				// t.Fatal is the test goroutine's: errors here.
				req := fmt.Sprintf("g%d_%d", g, i)
				fn := func(tx custos.Tx) error { appendAtEnd(t, tx, req); return nil }
				if g%2 == 0 {
					fn = func(tx custos.Tx) error { return writeAndAudit(t, tx, req) }
					mu.Lock()
					writes = append(writes, req)
					mu.Unlock()
				}
				if err := a.Update(t.Context(), fn); err != nil {
					t.Errorf("Update %s: %v", req, err)
				}
			}
		})
	}
	wg.Wait()
	settings, offTxs = read()
	for _, req := range writes {
		if settings[req] != "on" {
			t.Errorf("write %s committed with synchronous_commit %q, want on", req, settings[req])
		}
	}
	wantWritesKept(t, a, writes)
	if got := a.GroupStats().Async; got-async0 == 0 || got != int64(offTxs) {
		t.Errorf("node a: %d groups counted async (%d of them under load), the server saw %d; want them equal and some under load", got, got-async0, offTxs)
	}
	checkChain(t, a)
}
