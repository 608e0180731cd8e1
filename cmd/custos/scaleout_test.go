package main

// Scale-out tests (DESIGN "Scale-out"): several custos nodes on one
// PostgreSQL database. They need a database: CUSTOS_TEST_POSTGRES names
// one (CI sets it, see .ci/run); each test works in a schema of its own,
// created and dropped here, and reaches it through the search_path
// parameter of the store URL.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"custos"
	custoshttp "custos/http"
	"custos/seed"
)

// scalePurposes are the purposes the scale-out tests create, read, correct
// and erase under.
var scalePurposes = []string{"account", "fulfilment", "legal-obligation"}

// scaleFields are the seed fields a created subject carries (all of them
// allowed under scalePurposes).
var scaleFields = []string{"name", "gender", "birth_date", "id_number", "mobile", "email", "address", "member_no"}

// scaleVerifyRE parses the summary of custos audit verify.
var scaleVerifyRE = regexp.MustCompile(`audit chain OK: (\d+) events, (\d+) signed checkpoints`)

// scaleJobLeader is what a node logs when it becomes the job leader.
const scaleJobLeader = `msg="job leader" job=custos:audit-checkpoint`

// scaleSchema returns the URL of a fresh schema in the CUSTOS_TEST_POSTGRES
// database, dropped when t ends, or skips t when the variable is unset.
func scaleSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("CUSTOS_TEST_POSTGRES")
	if base == "" {
		t.Skip("CUSTOS_TEST_POSTGRES not set: PostgreSQL tests skipped (see .ci/run)")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("CUSTOS_TEST_POSTGRES must be a postgres:// URL for these tests (custos --store accepts no other form)")
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := "scale_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		if err := admin.Close(); err != nil {
			t.Errorf("close admin connection: %v", err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// scaleDB opens a database/sql handle on the test schema, for looking at
// the tables directly.
func scaleDB(t *testing.T, store string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// scaleInit runs custos init on a new data directory and the store, and
// returns the directory and the admin key.
func scaleInit(t *testing.T, store string) (dir, adminKey string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "node1")
	code, out, errOut := runCLI(t, context.Background(), "init", "--data", dir, "--store", store)
	if code != 0 {
		t.Fatalf("init: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	m := adminKeyRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init printed no admin key:\n%s", out)
	}
	for _, f := range []string{"master.keys", "audit-signing.key"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("init made no %s: %v", f, err)
		}
	}
	return dir, m[1]
}

// scaleVerify runs custos audit verify on the store and returns the number
// of events and checkpoints it verified; the chain must be whole.
func scaleVerify(t *testing.T, dir, store string) (events, checkpoints int) {
	t.Helper()
	code, out, errOut := runCLI(t, context.Background(), "audit", "verify", "--data", dir, "--store", store)
	m := scaleVerifyRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("audit verify: code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	events, _ = strconv.Atoi(m[1])
	checkpoints, _ = strconv.Atoi(m[2])
	return events, checkpoints
}

// scaleAuditShape returns the number of audit events and their lowest and
// highest seq, read from the table.
func scaleAuditShape(t *testing.T, db *sql.DB) (n, lo, hi int64) {
	t.Helper()
	err := db.QueryRowContext(context.Background(),
		`SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM audit_events`).Scan(&n, &lo, &hi)
	if err != nil {
		t.Fatal(err)
	}
	return n, lo, hi
}

// scaleSubject is what the tests know of a subject a node acknowledged.
type scaleSubject struct {
	id           custos.SubjectID
	node         int    // the node that created it
	name, mobile string // as acknowledged last (mobile normalised)
	oldMobile    string // before the correction, if corrected
	corrected    bool
	erased       bool
}

// TestTwoNodesOnePostgres runs two nodes on one PostgreSQL store, as a
// load balancer would use them: concurrent creates, reads, lookups,
// corrections and erasures spread over both. Every acknowledged write must
// then be visible, the same way, on both nodes, a duplicate must be caught
// whichever node it reaches, and the audit trail of both nodes must be one
// unbroken chain.
func TestTwoNodesOnePostgres(t *testing.T) {
	ctx := context.Background()
	store := scaleSchema(t)
	db := scaleDB(t, store)
	dir1, adminKey := scaleInit(t, store)
	dir2 := filepath.Join(t.TempDir(), "node2")
	copyDir(t, dir1, dir2)

	if code, out, _ := runCLI(t, ctx, "migrate", "status", "--store", store); code != 0 || !strings.Contains(out, "schema up to date") {
		t.Errorf("migrate status after init: code %d, stdout %q; want 0 and %q", code, out, "schema up to date")
	}

	// A node given a directory without the key files refuses to start:
	// new keys would make every stored value unreadable.
	{
		rctx, cancel := context.WithTimeout(ctx, startTimeout)
		code, out, errOut := runCLI(t, rctx, "serve", "--data", filepath.Join(t.TempDir(), "nokeys"), "--store", store, "--addr", "127.0.0.1:0")
		cancel()
		if code != 1 || !strings.Contains(errOut, "master key file is missing") || strings.Contains(out, "listening") {
			t.Errorf("serve without key files on an initialised store: code %d\nstdout: %s\nstderr: %s\nwant code 1 and a missing master key file", code, out, errOut)
		}
	}

	nodes := []*testServer{
		startServer(t, dir1, "--store", store),
		startServer(t, dir2, "--store", store),
	}
	for i, n := range nodes {
		if n.AdminKey != "" {
			t.Errorf("node %d printed an admin key on an initialised store", i+1)
		}
	}
	setupPlans(t, nodes[0].URL, adminKey) // collection plans and staff prerequisites
	admin := []*custoshttp.Client{nodes[0].client(adminKey), nodes[1].client(adminKey)}

	// The app principal is made on node 1 and used on both.
	app := &custos.Principal{Name: "shop app", Kind: custos.KindService, Roles: []string{"app"}}
	if err := admin[0].CreatePrincipal(ctx, app); err != nil {
		t.Fatalf("create app principal on node 1: %v", err)
	}
	key, err := admin[1].CreateAPIKey(ctx, app.ID)
	if err != nil {
		t.Fatalf("create the app's API key on node 2 (principal made on node 1): %v", err)
	}
	appc := []*custoshttp.Client{nodes[0].client(key.Token), nodes[1].client(key.Token)}

	// The customers and their corrections are generated up front: the
	// generator is not safe for concurrent use.
	const (
		total   = 200
		workers = 8
	)
	gen := seed.New(mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 0x7363616c65)))
	inputs := make([]custos.NewSubject, total)
	fixes := make([]custos.NewSubject, total)
	for i := range inputs {
		s := gen.Subject()
		f := make(map[string]string, len(scaleFields))
		for _, name := range scaleFields {
			f[name] = s.Fields[name]
		}
		inputs[i] = custos.NewSubject{Fields: f, Provenance: seed.Provenance}
		fixes[i] = gen.Subject()
	}

	var (
		ops     atomic.Int64 // subject requests sent, each audited
		mu      sync.Mutex
		subs    = make([]*scaleSubject, total)
		races   int
		started = time.Now()
	)
	call := func() { ops.Add(1) }
	fail := func(format string, a ...any) { t.Errorf(format, a...) }

	// work is everything done to customer i; node numbers alternate so that
	// each step crosses nodes.
	work := func(i int) {
		cn := i % 2
		other := 1 - cn
		in := inputs[i]
		var sub *custos.Subject
		if i%10 == 5 {
			// The same customer signs up on both nodes at the same time:
			// exactly one create succeeds, the other names it.
			var (
				wg   sync.WaitGroup
				got  [2]*custos.Subject
				errs [2]error
			)
			for n := range 2 {
				wg.Go(func() {
					call()
					got[n], errs[n] = admin[n].CreateSubject(ctx, scalePurposes, in)
				})
			}
			wg.Wait()
			switch {
			case errs[0] == nil && errs[1] == nil:
				fail("customer %d created twice by a race on both nodes: %s and %s", i, got[0].ID, got[1].ID)
				return
			case errs[0] != nil && errs[1] != nil:
				fail("customer %d: both racing creates failed: %v; %v", i, errs[0], errs[1])
				return
			}
			win := 0
			if errs[0] != nil {
				win = 1
			}
			if e := custos.AsError(errs[1-win]); e == nil || e.Code != custos.ECONFLICT || e.ConflictID != string(got[win].ID) {
				fail("customer %d: the losing racer on node %d got %v, want %s naming %s", i, 2-win, errs[1-win], custos.ECONFLICT, got[win].ID)
			}
			sub, cn, other = got[win], win, 1-win
			mu.Lock()
			races++
			mu.Unlock()
		} else {
			call()
			s, err := admin[cn].CreateSubject(ctx, scalePurposes, in)
			if err != nil {
				fail("create customer %d on node %d: %v", i, cn+1, err)
				return
			}
			sub = s
		}
		rec := &scaleSubject{id: sub.ID, node: cn, name: in.Fields["name"], mobile: in.Fields["mobile"]}
		mu.Lock()
		subs[i] = rec
		mu.Unlock()

		// Read your write on the other node, at once.
		call()
		got, err := admin[other].FindSubjectByID(ctx, scalePurposes, sub.ID)
		if err != nil {
			fail("read customer %d on node %d right after its create on node %d: %v", i, other+1, cn+1, err)
			return
		}
		if got.Fields["mobile"] != rec.mobile || got.Fields["name"] != rec.name {
			fail("customer %d read on node %d: got name %q mobile %q, want %q %q", i, other+1, got.Fields["name"], got.Fields["mobile"], rec.name, rec.mobile)
		}

		if i%3 == 0 {
			fix := fixes[i]
			un := (i / 3) % 2
			call()
			_, err := admin[un].UpdateSubject(ctx, scalePurposes, sub.ID, custos.SubjectUpdate{
				Fields:     map[string]*string{"name": ptr(fix.Fields["name"]), "mobile": ptr(fix.Fields["mobile"])},
				Provenance: custos.Provenance{Collector: "cs-desk", Channel: "crm", Source: "customer"},
			})
			if err != nil {
				fail("correct customer %d on node %d: %v", i, un+1, err)
				return
			}
			mu.Lock()
			rec.oldMobile, rec.mobile, rec.name, rec.corrected = rec.mobile, fix.Fields["mobile"], fix.Fields["name"], true
			mu.Unlock()
			// Looked up by the new mobile on the other node.
			call()
			found, err := admin[1-un].FindSubjectByLookup(ctx, scalePurposes, "mobile", fix.Fields["mobile"])
			if err != nil || found.ID != sub.ID || found.Fields["name"] != fix.Fields["name"] {
				fail("customer %d: lookup of the corrected mobile on node %d: got %v, %v; want %s named %q", i, 2-un, found, err, sub.ID, fix.Fields["name"])
			}
		}
		if i%4 == 1 {
			en := (i / 4) % 2
			call()
			rc, err := admin[en].EraseSubject(ctx, []string{"legal-obligation"}, sub.ID, "scale-out test erasure")
			if err != nil {
				fail("erase customer %d on node %d: %v", i, en+1, err)
				return
			}
			if rc.SubjectID != sub.ID {
				fail("erase customer %d: receipt for %s, want %s", i, rc.SubjectID, sub.ID)
			}
			mu.Lock()
			rec.erased = true
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				work(i)
			}
		})
	}
	wg.Wait()
	t.Logf("%d customers, %d subject requests (%d create races) on two nodes in %v", total, ops.Load(), races, time.Since(started).Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}

	// Every acknowledged write, as the app sees it on each node.
	var live, erased, corrected int
	for i, rec := range subs {
		if rec == nil {
			t.Fatalf("customer %d has no acknowledged create", i)
		}
		for n, c := range appc {
			call()
			got, err := c.FindSubjectByID(ctx, scalePurposes, rec.id)
			call()
			found, lerr := c.FindSubjectByLookup(ctx, scalePurposes, "mobile", rec.mobile)
			if rec.erased {
				if custos.ErrorCode(err) != custos.ENOTFOUND || custos.ErrorCode(lerr) != custos.ENOTFOUND {
					t.Errorf("erased customer %d (%s) on node %d: read %v, lookup %v; want %s for both", i, rec.id, n+1, err, lerr, custos.ENOTFOUND)
				}
				continue
			}
			if err != nil {
				t.Errorf("customer %d (%s) on node %d: %v", i, rec.id, n+1, err)
				continue
			}
			if got.Fields["mobile"] != rec.mobile || got.Fields["name"] != rec.name {
				t.Errorf("customer %d (%s) on node %d: got name %q mobile %q, want %q %q (corrected %v)",
					i, rec.id, n+1, got.Fields["name"], got.Fields["mobile"], rec.name, rec.mobile, rec.corrected)
			}
			if lerr != nil || found.ID != rec.id {
				t.Errorf("customer %d on node %d: lookup by mobile got %v, %v; want %s", i, n+1, found, lerr, rec.id)
			}
			if rec.corrected {
				call()
				_, err := c.FindSubjectByLookup(ctx, scalePurposes, "mobile", rec.oldMobile)
				if custos.ErrorCode(err) != custos.ENOTFOUND {
					t.Errorf("customer %d on node %d: lookup by the mobile it had before the correction: got %v, want %s", i, n+1, err, custos.ENOTFOUND)
				}
			}
		}
		switch {
		case rec.erased:
			erased++
		case rec.corrected:
			corrected++
			live++
		default:
			live++
		}
	}
	t.Logf("checked on both nodes: %d live customers (%d corrected), %d erased", live, corrected, erased)

	// A duplicate reaching the node that did not create the customer is
	// refused with the existing id, however the mobile is written.
	dups := 0
	for i, rec := range subs {
		if rec.erased || dups == 5 {
			continue
		}
		dups++
		other := 1 - rec.node
		digits := strings.TrimPrefix(rec.mobile, "+86")
		call()
		_, err := appc[other].CreateSubject(ctx, []string{"account"}, custos.NewSubject{
			Fields:     map[string]string{"name": "重复 客户", "mobile": digits[:3] + " " + digits[3:7] + " " + digits[7:]},
			Provenance: custos.Provenance{Collector: "pos-17", Channel: "pos", Source: "customer"},
		})
		e := custos.AsError(err)
		if e == nil || e.Code != custos.ECONFLICT || e.ConflictID != string(rec.id) {
			t.Errorf("duplicate of customer %d on node %d: got %v, want %s naming %s", i, other+1, err, custos.ECONFLICT, rec.id)
		}
	}

	for _, n := range nodes {
		n.stop(t)
	}

	// One chain for both nodes: gapless from 1, and it verifies.
	events, checkpoints := scaleVerify(t, dir1, store)
	if want := int(ops.Load()); events < want {
		t.Errorf("audit verify read %d events, want at least %d (one per subject request)", events, want)
	}
	if checkpoints < 1 {
		t.Errorf("audit verify: %d signed checkpoints, want at least the one written at shutdown", checkpoints)
	}
	if n, lo, hi := scaleAuditShape(t, db); n != int64(events) || lo != 1 || hi != n {
		t.Errorf("audit_events: %d rows, seq %d…%d; want %d rows numbered 1…%d", n, lo, hi, events, events)
	}
	// Node 2's copy of the keys verifies the same chain.
	if e2, _ := scaleVerify(t, dir2, store); e2 != events {
		t.Errorf("audit verify with node 2's keys: %d events, want %d", e2, events)
	}
	t.Logf("audit chain OK: %d events, %d signed checkpoints", events, checkpoints)
}

// TestJobLeaderTakeover runs two real custos processes on one store and
// kills the one leading the background jobs: the other must take over, and
// nothing the dead node acknowledged may be lost.
func TestJobLeaderTakeover(t *testing.T) {
	ctx := context.Background()
	store := scaleSchema(t)
	db := scaleDB(t, store)
	bin := scaleBuild(t)
	dir1, adminKey := scaleInit(t, store)
	dir2 := filepath.Join(t.TempDir(), "node2")
	copyDir(t, dir1, dir2)

	a := startChild(t, bin, "node A", "200ms", "--data", dir1, "--store", store)
	if !scaleWait(a.stderr, scaleJobLeader, 10*time.Second) {
		t.Fatalf("node A did not become job leader within 10 s%s\nA's log:\n%s", scaleLockHolders(db), a.stderr)
	}
	setupPlans(t, a.url, adminKey) // collection plans and staff prerequisites
	b := startChild(t, bin, "node B", "200ms", "--data", dir2, "--store", store)
	// A leads: B must not run the jobs too.
	if scaleWait(b.stderr, "job leader", 2*time.Second) {
		t.Fatalf("node B became job leader while A was alive\nA's log:\n%s\nB's log:\n%s", a.stderr, b.stderr)
	}

	// A acknowledges a write, then dies without any chance to clean up.
	in := seed.New(mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))).Subject()
	in = custos.NewSubject{Fields: map[string]string{"name": in.Fields["name"], "mobile": in.Fields["mobile"], "email": in.Fields["email"]}, Provenance: seed.Provenance}
	sub, err := custoshttp.NewClient(a.url, adminKey).CreateSubject(ctx, scalePurposes, in)
	if err != nil {
		t.Fatalf("create on A: %v", err)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill A: %v", err)
	}
	<-a.done
	killed := time.Now()

	if !scaleWait(b.stderr, "job leader", 15*time.Second) {
		t.Fatalf("node B did not take the job leadership within 15 s of A's death%s\nB's log:\n%s", scaleLockHolders(db), b.stderr)
	}
	t.Logf("B took the job leadership %v after A was killed", time.Since(killed).Round(time.Millisecond))
	if n := strings.Count(b.stderr.String(), "job leader"); n != 1 {
		t.Errorf("B logged %q %d times, want once", "job leader", n)
	}

	cb := custoshttp.NewClient(b.url, adminKey)
	got, err := cb.FindSubjectByID(ctx, scalePurposes, sub.ID)
	if err != nil {
		t.Fatalf("read on B of the customer A acknowledged before it was killed: %v", err)
	}
	if got.Fields["name"] != in.Fields["name"] || got.Fields["mobile"] != in.Fields["mobile"] {
		t.Errorf("customer from A read on B: got %v, want name %q mobile %q", got.Fields, in.Fields["name"], in.Fields["mobile"])
	}

	// One request on B; B's job, now the only one, signs the new head.
	_, before := scaleCheckpoints(t, db)
	in2 := custos.NewSubject{Fields: map[string]string{"name": "接管 测试", "mobile": "13900002222"}, Provenance: seed.Provenance}
	if _, err := cb.CreateSubject(ctx, []string{"account"}, in2); err != nil {
		t.Fatalf("create on B: %v", err)
	}
	_, _, head := scaleAuditShape(t, db)
	deadline := time.Now().Add(10 * time.Second)
	var count int
	var last int64
	for {
		count, last = scaleCheckpoints(t, db)
		if last >= head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint at or after seq %d within 10 s of B's request (last checkpoint at %d, before %d)\nB's log:\n%s", head, last, before, b.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last <= before {
		t.Errorf("checkpoint seq did not grow: %d before B's request, %d after", before, last)
	}

	// B stops cleanly on SIGTERM; the chain written by both verifies.
	b.terminate(t)
	events, checkpoints := scaleVerify(t, dir1, store)
	if checkpoints < count {
		t.Errorf("audit verify: %d checkpoints, want at least %d", checkpoints, count)
	}
	t.Logf("audit chain OK: %d events, %d signed checkpoints", events, checkpoints)
}

// scaleCheckpoints returns the number of signed checkpoints and the
// highest seq signed.
func scaleCheckpoints(t *testing.T, db *sql.DB) (count int, last int64) {
	t.Helper()
	if err := db.QueryRowContext(context.Background(),
		`SELECT count(*), coalesce(max(seq), 0) FROM audit_checkpoints`).Scan(&count, &last); err != nil {
		t.Fatal(err)
	}
	return count, last
}

// scaleLockHolders describes who holds advisory locks in the database, for
// a failure message: advisory locks are per database, not per schema, so
// another custos on the same database (another test run, say) shares the
// job leadership with the nodes under test.
func scaleLockHolders(db *sql.DB) string {
	rows, err := db.QueryContext(context.Background(), `SELECT l.pid, coalesce(a.application_name, ''), l.classid, l.objid, l.objsubid
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return "\n(advisory locks: " + err.Error() + ")"
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString("\nadvisory locks held in this database (pid, application, classid, objid, objsubid):")
	for rows.Next() {
		var (
			pid                   int
			app                   string
			classid, objid, subid int64
		)
		if err := rows.Scan(&pid, &app, &classid, &objid, &subid); err != nil {
			return b.String() + " " + err.Error()
		}
		fmt.Fprintf(&b, "\n  %d %q %d %d %d", pid, app, classid, objid, subid)
	}
	return b.String()
}

// scaleBuild builds this package's command into a temporary directory
// (not the source tree, which other builds share) and returns the
// binary's path.
func scaleBuild(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building the custos binary: no go command on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "custos")
	if out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// scaleWait reports whether buf contains s within d.
func scaleWait(buf *syncBuffer, s string, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		out, changed := buf.snapshot()
		if strings.Contains(out, s) {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return strings.Contains(buf.String(), s)
		}
	}
}
