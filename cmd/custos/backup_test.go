package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"custos"
	"custos/seed"
)

// bkStore is one store a backup test runs on: SQLite in the data directory,
// or a PostgreSQL schema.
type bkStore struct {
	name  string
	dir   string
	store string // "" for SQLite
}

// args are the flags naming the store.
func (s bkStore) args() []string {
	if s.store == "" {
		return []string{"--data", s.dir}
	}
	return []string{"--data", s.dir, "--store", s.store}
}

// bkStores returns SQLite always, and PostgreSQL when CUSTOS_TEST_POSTGRES
// is set (a fresh schema each), each with a new data directory.
func bkStores(t *testing.T) []func(t *testing.T) bkStore {
	return []func(t *testing.T) bkStore{
		func(t *testing.T) bkStore { return bkStore{name: "sqlite", dir: filepath.Join(t.TempDir(), "data")} },
		func(t *testing.T) bkStore {
			return bkStore{name: "postgres", dir: filepath.Join(t.TempDir(), "data"), store: scaleSchema(t)}
		},
	}
}

// eachStore runs f as a subtest per store.
func eachStore(t *testing.T, f func(t *testing.T, s bkStore)) {
	for i, mk := range bkStores(t) {
		t.Run([]string{"sqlite", "postgres"}[i], func(t *testing.T) { f(t, mk(t)) })
	}
}

// loseDatabase returns a store that has lost its database: the SQLite
// files are deleted (keys and ledger stay in the data directory), or a new
// empty PostgreSQL schema takes the old one's place.
func loseDatabase(t *testing.T, s bkStore) bkStore {
	t.Helper()
	if s.store == "" {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(filepath.Join(s.dir, "custos.db"+suffix)); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		return s
	}
	s.store = scaleSchema(t)
	return s
}

// unanalysed names the tables of a PostgreSQL store's schema that have no
// planner statistics from an ANALYZE (autovacuum's analyses do not count),
// and how many tables the schema has.
func unanalysed(t *testing.T, s bkStore) ([]string, int) {
	t.Helper()
	db, err := sql.Open("pgx", s.store)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(context.Background(), `SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE schemaname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var (
		missing []string
		n       int
	)
	for rows.Next() {
		var (
			name string
			done bool
		)
		if err := rows.Scan(&name, &done); err != nil {
			t.Fatal(err)
		}
		n++
		if !done {
			missing = append(missing, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return missing, n
}

// storeRows counts the rows of every table of the store, through the same
// dump a backup uses.
func storeRows(t *testing.T, s bkStore) int64 {
	t.Helper()
	ctx := context.Background()
	fs, cf := newFlags("test", os.Stderr)
	cfg, err := cf.parse(fs, s.args(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if s.store == "" {
		if _, err := os.Stat(cfg.DBPath()); os.IsNotExist(err) {
			return 0
		}
	}
	cfg.Migrate = true
	n, err := openStore(ctx, cfg, true)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	defer n.Close()
	var c rowCounter
	if err := n.store.(custos.Dumper).Dump(ctx, &c); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return c.rows
}

type rowCounter struct{ rows int64 }

func (c *rowCounter) Table(*custos.DumpTable) error { return nil }
func (c *rowCounter) Row([]any) error               { c.rows++; return nil }

// viewStore opens the (stopped) store s and runs fn in a read transaction.
func viewStore(t *testing.T, s bkStore, fn func(ctx context.Context, tx custos.Tx) error) {
	t.Helper()
	ctx := context.Background()
	fs, cf := newFlags("test", os.Stderr)
	cfg, err := cf.parse(fs, s.args(), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	n, err := openStore(ctx, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.store.View(ctx, func(tx custos.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

// dataKeyExists reports whether the store holds id's data key.
func dataKeyExists(t *testing.T, s bkStore, id custos.SubjectID) bool {
	t.Helper()
	var found bool
	viewStore(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetDataKey(ctx, id)
		if custos.ErrorCode(err) == custos.ENOTFOUND {
			return nil
		}
		found = err == nil
		return err
	})
	return found
}

func cli(t *testing.T, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	code, out, errOut := runCLI(t, context.Background(), args...)
	if code != want {
		t.Fatalf("custos %s: code %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out, errOut
}

var reappliedRE = regexp.MustCompile(`shred ledgers: (\d+) files, (\d+) erasures re-applied, (\d+) already reflected`)

// TestBackupRestoreKeepsErasures (S7, R4, DESIGN "Crypto-shredding"): a
// backup is taken of a live store; a customer is erased after it; the
// database is lost; the backup is restored into an empty store. The shred
// ledger, kept outside the database, makes the restore re-apply the
// erasure: the customer reads and looks up as not found and has no data
// key, while every other customer reads back exactly as before, and the
// restored audit chain verifies.
func TestBackupRestoreKeepsErasures(t *testing.T) {
	eachStore(t, func(t *testing.T, s bkStore) {
		ctx := context.Background()
		adminKey := bkInit(t, s)
		srv := startServer(t, s.dir, s.args()[2:]...)
		srv.Plans = setupPlans(t, srv.URL, adminKey) // init printed the key, so startServer filed none
		admin := srv.client(adminKey)
		ps := createPrincipals(t, srv, admin)
		gen := seed.New(rand.New(rand.NewPCG(11, 1)))
		var ids []custos.SubjectID
		before := map[custos.SubjectID]map[string]string{}
		mobiles := map[custos.SubjectID]string{}
		for range 12 {
			sub, err := ps.App.CreateSubject(ctx, seedPurposes, gen.Subject())
			if err != nil {
				t.Fatal(err)
			}
			got, err := ps.App.FindSubjectByID(ctx, seedPurposes, sub.ID)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, sub.ID)
			before[sub.ID], mobiles[sub.ID] = got.Fields, got.Fields["mobile"]
		}
		// An erasure before the backup: the backup reflects it already.
		if _, err := admin.EraseSubject(ctx, []string{"account"}, ids[0], "customer request"); err != nil {
			t.Fatalf("erase: %v", err)
		}
		file := filepath.Join(t.TempDir(), "before-erasure.cbk")
		cli(t, 0, append([]string{"backup", "--out", file, "--quiet"}, s.args()...)...) // live: the server runs
		gone := ids[3]
		if _, err := admin.EraseSubject(ctx, []string{"account"}, gone, "customer request"); err != nil {
			t.Fatalf("erase: %v", err)
		}
		srv.stop(t)

		r := loseDatabase(t, s)
		if n := storeRows(t, r); n != 0 {
			t.Fatalf("the lost store still has %d rows", n)
		}
		out, _ := cli(t, 0, append([]string{"restore", file, "--quiet"}, r.args()...)...)
		m := reappliedRE.FindStringSubmatch(out)
		if m == nil || m[1] != "1" || m[2] != "1" || m[3] != "1" {
			t.Fatalf("restore did not re-apply the one erasure made after the backup (and find the one before it reflected):\n%s", out)
		}
		if !strings.Contains(out, "audit chain OK") {
			t.Fatalf("restore did not verify the audit chain:\n%s", out)
		}
		if dataKeyExists(t, r, gone) {
			t.Errorf("the erased customer's data key is back after the restore")
		}
		srv2 := startServer(t, r.dir, r.args()[2:]...)
		app := srv2.client(ps.AppKey) // principals and keys come back too
		_, err := app.FindSubjectByID(ctx, seedPurposes, gone)
		wantCode(t, err, custos.ENOTFOUND)
		_, err = app.FindSubjectByLookup(ctx, []string{"account"}, "mobile", mobiles[gone])
		wantCode(t, err, custos.ENOTFOUND)
		for _, id := range ids[1:] {
			if id == gone {
				continue
			}
			got, err := app.FindSubjectByID(ctx, seedPurposes, id)
			if err != nil {
				t.Fatalf("read %s after restore: %v", id, err)
			}
			if d := cmp.Diff(before[id], got.Fields); d != "" {
				t.Errorf("subject %s after restore (-before +after):\n%s", id, d)
			}
			byMobile, err := app.FindSubjectByLookup(ctx, []string{"account"}, "mobile", mobiles[id])
			if err != nil || byMobile.ID != id {
				t.Errorf("lookup of %s after restore: %v %v", id, byMobile, err)
			}
		}
		act := custos.AuditSubjectErase
		evs := allAuditEvents(t, srv2.client(adminKey), custos.AuditFilter{Action: &act})
		var reapplied int
		for _, ev := range evs {
			if ev.SubjectID == gone && ev.Decision == custos.DecisionAllow && strings.HasPrefix(ev.Reason, "re-applied from the shred ledger") {
				reapplied++
			}
		}
		if reapplied != 1 {
			t.Errorf("audit: got %d re-applied erasure events for the erased customer, want 1 (%d erase events)", reapplied, len(evs))
		}
		// The restored store goes on: a new erasure takes the next ledger
		// seq (PostgreSQL's identity sequence was moved past the loaded rows).
		if _, err := srv2.client(adminKey).EraseSubject(ctx, []string{"account"}, ids[5], "customer request"); err != nil {
			t.Fatalf("erase after restore: %v", err)
		}
		srv2.stop(t)

		// A second restore of the same backup is refused: the store is not
		// empty, and nothing in it changes.
		rows := storeRows(t, r)
		_, errOut := cli(t, 1, append([]string{"restore", file, "--quiet"}, r.args()...)...)
		if !strings.Contains(errOut, "not empty") {
			t.Errorf("restore into a non-empty store: stderr %q lacks \"not empty\"", errOut)
		}
		if got := storeRows(t, r); got != rows {
			t.Errorf("refused restore changed the store: %d rows, were %d", got, rows)
		}
	})
}

// bkInit runs custos init on the store and returns the admin key.
func bkInit(t *testing.T, s bkStore) string {
	t.Helper()
	out, _ := cli(t, 0, append([]string{"init"}, s.args()...)...)
	m := adminKeyRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init printed no admin key:\n%s", out)
	}
	return m[1]
}

// TestBackupDuringWrites (S7): backups of a store taking concurrent writes
// are consistent snapshots: each restores into an empty store whose audit
// chain verifies, holding every customer created before the backup began
// (and reading them back), and no more than were ever created.
func TestBackupDuringWrites(t *testing.T) {
	eachStore(t, func(t *testing.T, s bkStore) {
		ctx := context.Background()
		adminKey := bkInit(t, s)
		srv := startServer(t, s.dir, s.args()[2:]...)
		srv.Plans = setupPlans(t, srv.URL, adminKey) // init printed the key, so startServer filed none
		ps := createPrincipals(t, srv, srv.client(adminKey))
		var (
			mu      sync.Mutex
			created []custos.SubjectID
			stop    atomic.Bool
			wg      sync.WaitGroup
			errs    = make(chan error, 4)
		)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gen := seed.New(rand.New(rand.NewPCG(uint64(w)+100, 2)))
				for !stop.Load() {
					sub, err := ps.App.CreateSubject(ctx, seedPurposes, gen.Subject())
					if custos.ErrorCode(err) == custos.ECONFLICT {
						continue // the generator repeated a mobile
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					created = append(created, sub.ID)
					mu.Unlock()
				}
			}()
		}
		count := func() int {
			mu.Lock()
			defer mu.Unlock()
			return len(created)
		}
		for count() < 20 {
			time.Sleep(10 * time.Millisecond)
		}
		type taken struct {
			file  string
			first int // customers acknowledged before the backup began
		}
		var backups []taken
		for i := range 2 {
			b := taken{file: filepath.Join(t.TempDir(), "live"+strconv.Itoa(i)+".cbk"), first: count()}
			cli(t, 0, append([]string{"backup", "--out", b.file, "--quiet"}, s.args()...)...)
			backups = append(backups, b)
		}
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("writer: %v", err)
		}
		srv.stop(t)
		total := count()
		if total <= backups[1].first {
			t.Logf("only %d customers were written during the backups", total-backups[0].first)
		}

		for i, b := range backups {
			r := loseDatabase(t, s)
			out, _ := cli(t, 0, append([]string{"restore", b.file, "--no-ledger", "--quiet"}, r.args()...)...)
			if !strings.Contains(out, "audit chain OK") {
				t.Fatalf("backup %d: restore did not verify the audit chain:\n%s", i, out)
			}
			n := countSubjects(t, r)
			if n < b.first || n > total {
				t.Errorf("backup %d holds %d customers; want between %d (acknowledged before it began) and %d (ever created)", i, n, b.first, total)
			}
			srv2 := startServer(t, r.dir, r.args()[2:]...)
			app := srv2.client(ps.AppKey)
			for _, id := range created[:b.first] {
				if _, err := app.FindSubjectByID(ctx, []string{"account"}, id); err != nil {
					t.Fatalf("backup %d: customer %s created before it began: %v", i, id, err)
				}
			}
			srv2.stop(t)
		}
	})
}

// countSubjects counts the customers in the store.
func countSubjects(t *testing.T, s bkStore) int {
	t.Helper()
	var c int
	viewStore(t, s, func(ctx context.Context, tx custos.Tx) (err error) {
		c, err = tx.CountSubjects(ctx)
		return err
	})
	return c
}

// backupParts splits a backup file into its head (magic, length, header)
// and its frames (type, length, payload), for tampering with.
func backupParts(t *testing.T, b []byte) (head []byte, frames [][]byte) {
	t.Helper()
	hl := int(binary.BigEndian.Uint32(b[8:12]))
	head, rest := b[:12+hl], b[12+hl:]
	for len(rest) > 0 {
		n := 5 + int(binary.BigEndian.Uint32(rest[1:5]))
		frames, rest = append(frames, rest[:n]), rest[n:]
	}
	if len(frames) < 4 || frames[len(frames)-1][0] != 'S' || frames[len(frames)-2][0] != 'F' {
		t.Fatalf("backup has %d frames; want at least 3 chunks, the last final, then the trailer", len(frames))
	}
	return head, frames
}

func joinParts(head []byte, frames ...[]byte) []byte {
	return bytes.Join(append([][]byte{head}, frames...), nil)
}

// TestCorruptBackupRefused (S7): a backup changed in any way — a flipped
// byte in a chunk or the header, cut short, a chunk dropped, repeated,
// reordered or marked final, the signature gone, bytes appended — is
// refused by custos backup verify (exit 1, "backup BROKEN") and by custos
// restore, which leaves the target store empty. The intact file verifies
// and restores.
func TestCorruptBackupRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, s bkStore) {
		bkInit(t, s)
		cli(t, 0, append([]string{"seed", "-subjects", "80", "-records", "1", "-quiet"}, s.args()...)...)
		dir := t.TempDir()
		good := filepath.Join(dir, "good.cbk")
		cli(t, 0, append([]string{"backup", "--out", good, "--quiet"}, s.args()...)...)
		orig, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		head, fr := backupParts(t, orig)
		chunks, trailer := fr[:len(fr)-1], fr[len(fr)-1]
		flip := func(b []byte, i int) []byte {
			c := bytes.Clone(b)
			c[i] ^= 0x01
			return c
		}
		headerEdit := func(from, to string) []byte {
			if !bytes.Contains(head, []byte(from)) {
				t.Fatalf("header lacks %q: %s", from, head)
			}
			return bytes.Replace(head, []byte(from), []byte(to), 1)
		}
		relabel := func(f []byte, typ byte) []byte {
			c := bytes.Clone(f)
			c[0] = typ
			return c
		}
		last := len(chunks) - 1
		cases := []struct {
			name string
			file []byte
		}{
			{"byte flipped in the first chunk", flip(orig, len(head)+5+40)},
			{"byte flipped in the last chunk", joinParts(head, append(chunks[:last:last], flip(chunks[last], 30), trailer)...)},
			{"byte flipped in the signature", joinParts(head, append(chunks[:len(chunks):len(chunks)], flip(trailer, len(trailer)-8))...)},
			{"header: backup id changed", joinParts(headerEdit(`"id":"bkp_`, `"id":"bkq_`), fr...)},
			{"header: store name changed", joinParts(headerEdit(`"store":"`+s.name+`"`, `"store":"`+strings.ToUpper(s.name)+`"`), fr...)},
			{"header: master key version changed", joinParts(headerEdit(`"kek_version":1`, `"kek_version":2`), fr...)},
			{"truncated in the middle", orig[:len(orig)/2]},
			{"truncated inside the signature", orig[:len(orig)-20]},
			{"trailer dropped", joinParts(head, chunks...)},
			{"chunk dropped", joinParts(head, append(append([][]byte{chunks[0]}, chunks[2:]...), trailer)...)},
			{"chunks reordered", joinParts(head, append(append([][]byte{chunks[1], chunks[0]}, chunks[2:]...), trailer)...)},
			{"chunk repeated", joinParts(head, append(append([][]byte{chunks[0], chunks[0]}, chunks[1:]...), trailer)...)},
			{"first chunk marked final, the rest cut", joinParts(head, relabel(chunks[0], 'F'), trailer)},
			{"final chunk marked not final", joinParts(head, append(chunks[:last:last], relabel(chunks[last], 'C'), trailer)...)},
			{"bytes appended", append(bytes.Clone(orig), 'x')},
			{"not a backup", []byte("CUSTOSBX" + string(orig[8:100]))},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				f := filepath.Join(dir, "bad.cbk")
				if err := os.WriteFile(f, c.file, 0o600); err != nil {
					t.Fatal(err)
				}
				out, _ := cli(t, 1, append([]string{"backup", "verify", f}, s.args()...)...)
				if !strings.Contains(out, "backup BROKEN") {
					t.Errorf("verify: stdout lacks \"backup BROKEN\":\n%s", out)
				}
				r := loseDatabase(t, s)
				_, errOut := cli(t, 1, append([]string{"restore", f, "--no-ledger", "--quiet"}, r.args()...)...)
				if !strings.Contains(errOut, "nothing") {
					t.Errorf("restore: stderr does not say nothing was restored:\n%s", errOut)
				}
				if n := storeRows(t, r); n != 0 {
					t.Errorf("the refused restore left %d rows in the target", n)
				}
			})
		}
		out, _ := cli(t, 0, append([]string{"backup", "verify", good}, s.args()...)...)
		if !strings.Contains(out, "backup OK") || !strings.Contains(out, "subjects") {
			t.Errorf("intact backup: %s", out)
		}
		r := loseDatabase(t, s)
		cli(t, 0, append([]string{"restore", good, "--no-ledger", "--quiet"}, r.args()...)...)
		if n := countSubjects(t, r); n != 80 {
			t.Errorf("intact backup restored %d customers, want 80", n)
		}
	})
}

// TestBackupAcrossStores (S7): the dump's portable rows let a SQLite backup
// restore into PostgreSQL and back again, with every customer reading back
// the same and the audit chain verifying after each restore.
func TestBackupAcrossStores(t *testing.T) {
	ctx := context.Background()
	pg := scaleSchema(t) // skips without CUSTOS_TEST_POSTGRES
	lite := bkStore{name: "sqlite", dir: filepath.Join(t.TempDir(), "data")}
	adminKey := bkInit(t, lite)
	srv := startServer(t, lite.dir)
	srv.Plans = setupPlans(t, srv.URL, adminKey) // init printed the key, so startServer filed none
	ps := createPrincipals(t, srv, srv.client(adminKey))
	gen := seed.New(rand.New(rand.NewPCG(21, 1)))
	before := map[custos.SubjectID]map[string]string{}
	for range 5 {
		sub, err := ps.App.CreateSubject(ctx, seedPurposes, gen.Subject())
		if err != nil {
			t.Fatal(err)
		}
		got, err := ps.App.FindSubjectByID(ctx, seedPurposes, sub.ID)
		if err != nil {
			t.Fatal(err)
		}
		before[sub.ID] = got.Fields
	}
	srv.stop(t)
	check := func(s bkStore) {
		t.Helper()
		srv := startServer(t, s.dir, s.args()[2:]...)
		app := srv.client(ps.AppKey)
		for id, want := range before {
			got, err := app.FindSubjectByID(ctx, seedPurposes, id)
			if err != nil {
				t.Fatalf("%s: read %s: %v", s.name, id, err)
			}
			if d := cmp.Diff(want, got.Fields); d != "" {
				t.Errorf("%s: subject %s (-before +after):\n%s", s.name, id, d)
			}
		}
		srv.stop(t)
	}
	fromLite := filepath.Join(t.TempDir(), "sqlite.cbk")
	cli(t, 0, "backup", "--out", fromLite, "--quiet", "--data", lite.dir)
	toPG := bkStore{name: "postgres", dir: filepath.Join(t.TempDir(), "pg"), store: pg}
	copyKeys(t, lite.dir, toPG.dir)
	out, _ := cli(t, 0, append([]string{"restore", fromLite, "--no-ledger", "--quiet"}, toPG.args()...)...)
	if !strings.Contains(out, "audit chain OK") {
		t.Fatalf("restore into PostgreSQL:\n%s", out)
	}
	if missing, n := unanalysed(t, toPG); len(missing) > 0 || n < 10 {
		t.Errorf("after the restore %d of the %d tables have no planner statistics: %v", len(missing), n, missing)
	}
	check(toPG)
	fromPG := filepath.Join(t.TempDir(), "pg.cbk")
	cli(t, 0, append([]string{"backup", "--out", fromPG, "--quiet"}, toPG.args()...)...)
	back := bkStore{name: "sqlite again", dir: filepath.Join(t.TempDir(), "back")}
	copyKeys(t, lite.dir, back.dir)
	out, _ = cli(t, 0, append([]string{"restore", fromPG, "--no-ledger", "--quiet"}, back.args()...)...)
	if !strings.Contains(out, "audit chain OK") {
		t.Fatalf("restore into SQLite:\n%s", out)
	}
	check(back)
}

// TestRestoreWithoutLedgerBringsBackErasedCustomer shows why the ledger
// exists (S7): restored with --no-ledger, a backup taken before an erasure
// gives the erased customer back; restore --reapply-only with the ledger
// (as after an interrupted restore) erases them again, and a second run
// finds nothing left to do.
func TestRestoreWithoutLedgerBringsBackErasedCustomer(t *testing.T) {
	eachStore(t, func(t *testing.T, s bkStore) {
		ctx := context.Background()
		adminKey := bkInit(t, s)
		srv := startServer(t, s.dir, s.args()[2:]...)
		srv.Plans = setupPlans(t, srv.URL, adminKey) // init printed the key, so startServer filed none
		admin := srv.client(adminKey)
		ps := createPrincipals(t, srv, admin)
		sub, err := ps.App.CreateSubject(ctx, seedPurposes, seed.New(rand.New(rand.NewPCG(31, 1))).Subject())
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "b.cbk")
		cli(t, 0, append([]string{"backup", "--out", file, "--quiet"}, s.args()...)...)
		if _, err := admin.EraseSubject(ctx, []string{"account"}, sub.ID, "customer request"); err != nil {
			t.Fatal(err)
		}
		srv.stop(t)

		r := loseDatabase(t, s)
		cli(t, 0, append([]string{"restore", file, "--no-ledger", "--quiet"}, r.args()...)...)
		if !dataKeyExists(t, r, sub.ID) {
			t.Fatalf("control: without the ledger the backup should give the erased customer's key back")
		}
		out, _ := cli(t, 0, append([]string{"restore", "--reapply-only", "--quiet"}, r.args()...)...)
		if m := reappliedRE.FindStringSubmatch(out); m == nil || m[2] != "1" || !strings.Contains(out, "audit chain OK") {
			t.Fatalf("reapply-only:\n%s", out)
		}
		if dataKeyExists(t, r, sub.ID) {
			t.Errorf("the erased customer's key survived restore --reapply-only")
		}
		out, _ = cli(t, 0, append([]string{"restore", "--reapply-only", "--quiet"}, r.args()...)...)
		if m := reappliedRE.FindStringSubmatch(out); m == nil || m[2] != "0" || m[3] != "1" {
			t.Errorf("second reapply-only should find the erasure reflected:\n%s", out)
		}
	})
}

// TestRestoreTwoNodeLedgers (S7, scale-out): two nodes on one PostgreSQL
// each keep their own shred ledger; after the database is lost, a restore
// given both ledgers re-applies the erasures made through either node.
func TestRestoreTwoNodeLedgers(t *testing.T) {
	ctx := context.Background()
	store := scaleSchema(t)
	dir1, adminKey := scaleInit(t, store)
	dir2 := filepath.Join(t.TempDir(), "node2")
	copyDir(t, dir1, dir2)
	n1, n2 := startServer(t, dir1, "--store", store), startServer(t, dir2, "--store", store)
	n1.Plans = setupPlans(t, n1.URL, adminKey)
	ps := createPrincipals(t, n1, n1.client(adminKey))
	gen := seed.New(rand.New(rand.NewPCG(41, 1)))
	var ids []custos.SubjectID
	for range 4 {
		sub, err := ps.App.CreateSubject(ctx, seedPurposes, gen.Subject())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sub.ID)
	}
	file := filepath.Join(t.TempDir(), "b.cbk")
	cli(t, 0, "backup", "--out", file, "--quiet", "--data", dir1, "--store", store)
	if _, err := n1.client(adminKey).EraseSubject(ctx, []string{"account"}, ids[0], "customer request"); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.client(adminKey).EraseSubject(ctx, []string{"account"}, ids[1], "account closed"); err != nil {
		t.Fatal(err)
	}
	n1.stop(t)
	n2.stop(t)

	r := bkStore{name: "postgres", dir: dir1, store: scaleSchema(t)}
	out, _ := cli(t, 0, "restore", file, "--quiet", "--data", r.dir, "--store", r.store,
		"--ledger", filepath.Join(dir1, "shred-ledger.jsonl"), "--ledger", filepath.Join(dir2, "shred-ledger.jsonl"))
	if m := reappliedRE.FindStringSubmatch(out); m == nil || m[1] != "2" || m[2] != "2" {
		t.Fatalf("restore with both nodes' ledgers:\n%s", out)
	}
	for i, id := range ids {
		if got, want := dataKeyExists(t, r, id), i >= 2; got != want {
			t.Errorf("customer %d: data key present %v, want %v", i, got, want)
		}
	}
}

// TestBackupUsage: missing or contradictory arguments are usage errors
// (exit 2); an existing output file is never overwritten.
func TestBackupUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"backup", "--data", dir},
		{"backup", "verify", "--data", dir},
		{"restore", "--data", dir},
		{"restore", "f.cbk", "--reapply-only", "--data", dir},
		{"restore", "f.cbk", "--no-ledger", "--ledger", "x.jsonl", "--data", dir},
		{"restore", "f.cbk", "g.cbk", "--data", dir},
	} {
		if code, _, _ := runCLI(t, context.Background(), args...); code != 2 {
			t.Errorf("custos %s: code %d, want 2", strings.Join(args, " "), code)
		}
	}
	bkInit(t, bkStore{dir: dir})
	existing := filepath.Join(t.TempDir(), "taken.cbk")
	if err := os.WriteFile(existing, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut := cli(t, 1, "backup", "--out", existing, "--data", dir)
	if b, _ := os.ReadFile(existing); string(b) != "keep me" || !strings.Contains(errOut, "already exists") {
		t.Errorf("backup over an existing file: %q, stderr %q", b, errOut)
	}
}

// TestRestoreKeepsRestrictedDeletion: a deletion that kept an order
// restricted for its legal minimum is in the shred ledger too; a restore
// from a backup taken before it repeats it as such a deletion — the profile
// and lookups go again, the order stays locked (S7, R4, L2).
func TestRestoreKeepsRestrictedDeletion(t *testing.T) {
	eachStore(t, func(t *testing.T, s bkStore) {
		ctx := context.Background()
		adminKey := bkInit(t, s)
		srv := startServer(t, s.dir, s.args()[2:]...)
		srv.Plans = setupPlans(t, srv.URL, adminKey) // init printed the key, so startServer filed none
		admin := srv.client(adminKey)
		ps := createPrincipals(t, srv, admin)
		prov := custos.Provenance{Collector: "app", Channel: "app", Source: "customer"}
		sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment"}, custos.NewSubject{
			Fields: map[string]string{"name": "孙小美", "mobile": "13955550001"}, Provenance: prov})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, sub.ID, custos.NewRecord{Type: "order", OccurredAt: time.Now().Add(-time.Hour),
			Data: map[string]any{"amount": "12.00"}, Provenance: prov}); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "before-deletion.cbk")
		cli(t, 0, append([]string{"backup", "--out", file, "--quiet"}, s.args()...)...)
		q, err := ps.CS.FileRightsRequest(ctx, custos.NewRightsRequest{SubjectID: sub.ID, Type: custos.RightsDelete, Channel: "phone",
			Verified: custos.VerifyStaff, Evidence: "called back"})
		if err != nil || len(q.Retained) != 1 {
			t.Fatalf("deletion: %v %+v", err, q)
		}
		srv.stop(t)

		r := loseDatabase(t, s)
		out, _ := cli(t, 0, append([]string{"restore", file, "--quiet"}, r.args()...)...)
		if m := reappliedRE.FindStringSubmatch(out); m == nil || m[2] != "1" {
			t.Fatalf("restore did not re-apply the deletion:\n%s", out)
		}
		if !dataKeyExists(t, r, sub.ID) {
			t.Errorf("the data key of the kept order is gone: the order can no longer be kept as the law requires")
		}
		srv2 := startServer(t, r.dir, r.args()[2:]...)
		cs := srv2.client(ps.CSKey)
		_, err = cs.FindSubjectByID(ctx, []string{"customer-service"}, sub.ID)
		wantCode(t, err, custos.EFORBIDDEN) // restricted
		_, err = cs.FindSubjectByLookup(ctx, []string{"customer-service"}, "mobile", "13955550001")
		wantCode(t, err, custos.ENOTFOUND)
		srv2.stop(t)
	})
}
