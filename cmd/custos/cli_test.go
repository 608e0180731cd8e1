package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"custos"
	"custos/audit"
	"custos/seed"
	"custos/sqlite"
)

// TestInitThenServe: init sets up a private data directory and prints the
// admin key once; serve on it prints none and accepts that key.
func TestInitThenServe(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := runCLI(t, ctx, "init", "--data", dir)
	if code != 0 {
		t.Fatalf("init: code %d\n%s\n%s", code, out, errOut)
	}
	keys := adminKeyRE.FindAllStringSubmatch(out, -1)
	if len(keys) != 1 || strings.Count(out, "admin key: ") != 1 {
		t.Fatalf("init: got %d admin key lines, want 1:\n%s", strings.Count(out, "admin key: "), out)
	}
	adminKey := keys[0][1]
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{dir, 0o700 | os.ModeDir},
		{filepath.Join(dir, "master.keys"), 0o600},
		{filepath.Join(dir, "audit-signing.key"), 0o600},
		{filepath.Join(dir, "custos.db"), 0o600},
		{filepath.Join(dir, "custos.db-auditindex"), 0o600},
	} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Errorf("init: %v", err)
			continue
		}
		if st.Mode() != f.mode {
			t.Errorf("%s: got mode %v, want %v", f.path, st.Mode(), f.mode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "custos.db")); err != nil {
		t.Errorf("init made no database: %v", err)
	}
	keyBefore, err := os.ReadFile(filepath.Join(dir, "master.keys"))
	if err != nil {
		t.Fatal(err)
	}

	// A second init changes nothing and shows no key.
	code, out, errOut = runCLI(t, ctx, "init", "--data", dir)
	if code != 0 || strings.Contains(out, "admin key: ") || !strings.Contains(out, "already initialised") {
		t.Errorf("second init: code %d\n%s\n%s", code, out, errOut)
	}
	if keyAfter, err := os.ReadFile(filepath.Join(dir, "master.keys")); err != nil || !bytes.Equal(keyBefore, keyAfter) {
		t.Errorf("second init changed master.keys (err %v)", err)
	}

	srv := startServer(t, dir)
	if srv.AdminKey != "" || strings.Contains(srv.Stdout.String(), "admin key: ") {
		t.Errorf("serve after init printed an admin key:\n%s", srv.Stdout)
	}
	prs, err := srv.client(adminKey).FindPrincipals(ctx)
	if err != nil {
		t.Fatalf("the init admin key does not work: %v", err)
	}
	if len(prs) != 1 || !slices.Contains(prs[0].Roles, custos.RoleAdmin) {
		t.Errorf("principals after init: got %s, want the bootstrap admin only", mustJSON(t, prs))
	}
	_, err = srv.client("cst_wrong").FindPrincipals(ctx)
	wantCode(t, err, custos.EUNAUTHORIZED)
	srv.stop(t)
}

// TestConfigPrecedence: flags beat CUSTOS_* variables, which beat the
// config file, which beats the defaults.
func TestConfigPrecedence(t *testing.T) {
	file := `{"addr": "127.0.0.1:1111", "log_level": "warn", "log_format": "json"}`
	tests := []struct {
		name       string
		file       string // written to DIR/custos.json when set
		otherFile  string // written to another path, passed by -config or CUSTOS_CONFIG
		args       []string
		env        map[string]string
		noDataFlag bool // the data dir comes from CUSTOS_DATA
		want       Config
		wantErr    string
	}{
		{name: "defaults", want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info"}},
		{name: "file", file: file, want: Config{Addr: "127.0.0.1:1111", LogFormat: "json", LogLevel: "warn"}},
		{name: "env beats file", file: file, env: map[string]string{"CUSTOS_ADDR": "127.0.0.1:2222", "CUSTOS_LOG_LEVEL": "debug"},
			want: Config{Addr: "127.0.0.1:2222", LogFormat: "json", LogLevel: "debug"}},
		{name: "flag beats env and file", file: file, args: []string{"-addr", "127.0.0.1:3333", "-log-level", "error"},
			env:  map[string]string{"CUSTOS_ADDR": "127.0.0.1:2222", "CUSTOS_LOG_LEVEL": "debug"},
			want: Config{Addr: "127.0.0.1:3333", LogFormat: "json", LogLevel: "error"}},
		{name: "CUSTOS_DATA finds DIR/custos.json", file: file, noDataFlag: true,
			want: Config{Addr: "127.0.0.1:1111", LogFormat: "json", LogLevel: "warn"}},
		{name: "-config names another file", file: file, otherFile: `{"addr": "127.0.0.1:4444"}`, args: []string{"-config", "OTHER"},
			want: Config{Addr: "127.0.0.1:4444", LogFormat: "text", LogLevel: "info"}},
		{name: "CUSTOS_CONFIG names another file", otherFile: `{"addr": "127.0.0.1:5555"}`, env: map[string]string{"CUSTOS_CONFIG": "OTHER"},
			want: Config{Addr: "127.0.0.1:5555", LogFormat: "text", LogLevel: "info"}},
		{name: "tuning from flags", args: []string{"-read-cache", "-1", "-pg-writers", "4", "-max-conns", "32"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", ReadCache: -1, PGWriters: 4, MaxConns: 32}},
		{name: "tuning from env", env: map[string]string{"CUSTOS_READ_CACHE": "1000", "CUSTOS_PG_WRITERS": "3"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", ReadCache: 1000, PGWriters: 3}},
		{name: "tuning from the file", file: `{"read_cache": 20, "pg_writers": 1}`,
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", ReadCache: 20, PGWriters: 1}},
		{name: "read audit durability from the flag", args: []string{"-read-audit-durability", "committed"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", ReadAuditDurability: "committed"}},
		{name: "read audit durability: env beats file", file: `{"read_audit_durability": "committed"}`,
			env:  map[string]string{"CUSTOS_READ_AUDIT_DURABILITY": "synced"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", ReadAuditDurability: "synced"}},
		{name: "bad read audit durability", file: `{"read_audit_durability": "never"}`, wantErr: `read_audit_durability "never": want synced (default) or committed`},
		{name: "read audit durability committed on PostgreSQL", args: []string{"-read-audit-durability", "committed", "-store", "postgres://db/custos"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", ReadAuditDurability: "committed", Store: "postgres://db/custos"}},
		{name: "gc headroom from the flag", args: []string{"-gc-headroom-mib", "256"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", GCHeadroomMiB: 256}},
		{name: "gc headroom: env beats file", file: `{"gc_headroom_mib": 64}`, env: map[string]string{"CUSTOS_GC_HEADROOM_MIB": "128"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", GCHeadroomMiB: 128}},
		{name: "gc headroom off from env", file: `{"gc_headroom_mib": 64}`, env: map[string]string{"CUSTOS_GC_HEADROOM_MIB": "-1"},
			want: Config{Addr: DefaultAddr, LogFormat: "text", LogLevel: "info", GCHeadroomMiB: -1}},
		{name: "bad gc headroom in the file", file: `{"gc_headroom_mib": -2}`, wantErr: "gc_headroom_mib -2: want -1 (off), 0 (auto, the default) or a number of MiB"},
		{name: "bad gc headroom from env: below -1", env: map[string]string{"CUSTOS_GC_HEADROOM_MIB": "-5"}, wantErr: "CUSTOS_GC_HEADROOM_MIB"},
		{name: "bad gc headroom from env", env: map[string]string{"CUSTOS_GC_HEADROOM_MIB": "lots"}, wantErr: "CUSTOS_GC_HEADROOM_MIB"},
		{name: "bad read cache", args: []string{"-read-cache", "-2"}, wantErr: "read_cache"},
		{name: "bad read cache from env", env: map[string]string{"CUSTOS_READ_CACHE": "lots"}, wantErr: "CUSTOS_READ_CACHE"},
		{name: "bad pg writers from env", env: map[string]string{"CUSTOS_PG_WRITERS": "0"}, wantErr: "CUSTOS_PG_WRITERS"},
		{name: "bad pg writers in the file", file: `{"pg_writers": -1}`, wantErr: "pg_writers"},
		{name: "unknown key in the file", file: `{"adress": "127.0.0.1:1"}`, wantErr: "adress"},
		{name: "bad level from env", env: map[string]string{"CUSTOS_LOG_LEVEL": "loud"}, wantErr: "log_level"},
		{name: "bad addr from flag", args: []string{"-addr", "nowhere"}, wantErr: "addr"},
		{name: "missing -config file", args: []string{"-config", "/nonexistent/custos.json"}, wantErr: "config"},
		{name: "missing CUSTOS_CONFIG file", env: map[string]string{"CUSTOS_CONFIG": "/nonexistent/custos.json"}, wantErr: "config"},
		{name: "store URL password redacted", args: []string{"-store", "mysql://u:hunter2@db/custos"}, wantErr: "mysql://***@db/custos"},
		{name: "store URL password parameter redacted", args: []string{"-store", "mysql://db/custos?user=u&password=hunter2"}, wantErr: "store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, "custos.json"), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			other := filepath.Join(t.TempDir(), "other.json")
			if tc.otherFile != "" {
				if err := os.WriteFile(other, []byte(tc.otherFile), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = strings.ReplaceAll(v, "OTHER", other)
			}
			var args []string
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "OTHER", other))
			}
			if tc.noDataFlag {
				env["CUSTOS_DATA"] = dir
			} else {
				args = append(args, "-data", dir)
			}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			cf := bindFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			got, err := cf.load(envOf(env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one naming %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("the error shows the store password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.Data = dir
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// populate starts a server on dir, creates an app principal and n seeded
// subjects, reads each once, and stops. It returns the subjects' ids and
// their normalised mobiles, and the app's key.
func populate(t *testing.T, dir string, n int, seedV uint64) (ids []custos.SubjectID, mobiles []string, adminKey, appKey string) {
	t.Helper()
	ctx := context.Background()
	srv := startServer(t, dir)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	gen := seed.New(rand.New(rand.NewPCG(seedV, 1)))
	for range n {
		in := gen.Subject()
		s, err := ps.App.CreateSubject(ctx, seedPurposes, in)
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := ps.App.FindSubjectByID(ctx, []string{"account"}, s.ID)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		ids, mobiles = append(ids, s.ID), append(mobiles, got.Fields["mobile"])
	}
	srv.stop(t)
	return ids, mobiles, srv.AdminKey, ps.AppKey
}

// seedPurposes cover every field seed.Generator.Subject fills in.
var seedPurposes = []string{"account", "fulfilment", "legal-obligation"}

var brokenRE = regexp.MustCompile(`audit chain BROKEN: (\w+) at event (\d+):`)

// TestAuditVerifyDetectsTampering: someone with write access to the
// database edits, deletes, forges or reorders audit events (S5); `custos
// audit verify` exits non-zero and names the first bad event and what was
// done to it. The untouched log verifies.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	populate(t, src, 4, 11)

	clean := filepath.Join(t.TempDir(), "clean")
	copyDir(t, src, clean)
	code, out, errOut := runCLI(t, ctx, "audit", "verify", "--data", clean)
	if code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("untouched copy: code %d\n%s\n%s", code, out, errOut)
	}
	m := regexp.MustCompile(`audit chain OK: (\d+) events, (\d+) signed checkpoints`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("untouched copy: unexpected output %q", out)
	}
	if n, _ := strconv.Atoi(m[1]); n < 12 {
		t.Fatalf("only %d events to tamper with", n)
	}
	if cps, _ := strconv.Atoi(m[2]); cps < 1 {
		t.Errorf("no signed checkpoint was verified: %s", out)
	}

	const k = 5 // a subject.create in the middle of the log
	tests := []struct {
		name     string
		tamper   func(t *testing.T, db *sql.DB, path string)
		wantKind string
		wantSeq  int64
	}{
		{"update an action", func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `UPDATE audit_events SET action = 'subject.read' WHERE seq = ?`, k)
		}, audit.KindAltered, k},
		{"delete an event", func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `DELETE FROM audit_events WHERE seq = ?`, k)
		}, audit.KindRemoved, k},
		{"insert a forged event and renumber", func(t *testing.T, db *sql.DB, path string) {
			// The forger links the event to its predecessor and computes
			// its hash correctly; only the events after it betray it.
			prev := readEvent(t, path, k)
			forged := *prev
			forged.Seq, forged.Action, forged.Decision = k+1, custos.AuditSubjectErase, custos.DecisionAllow
			forged.PrevHash = prev.Hash
			forged.Hash = audit.Hash(prev.Hash, &forged)
			mustExec(t, db, `UPDATE audit_events SET seq = -seq WHERE seq > ?`, k)
			mustExec(t, db, `UPDATE audit_events SET seq = 1 - seq WHERE seq < 0`)
			mustExec(t, db, `INSERT INTO audit_events (seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash)
				SELECT ?, time, actor_id, ?, subject_id, fields, purposes, ?, reason, request_id, ?, ? FROM audit_events WHERE seq = ?`,
				forged.Seq, forged.Action, forged.Decision, forged.PrevHash, forged.Hash, k)
		}, audit.KindInserted, k + 1},
		{"swap two events' seq", func(t *testing.T, db *sql.DB, _ string) {
			mustExec(t, db, `UPDATE audit_events SET seq = -1 WHERE seq = ?`, k)
			mustExec(t, db, `UPDATE audit_events SET seq = ? WHERE seq = ?`, k, k+1)
			mustExec(t, db, `UPDATE audit_events SET seq = ? WHERE seq = -1`, k+1)
		}, audit.KindReordered, k},
		{"edit and recompute the rest of the chain", func(t *testing.T, db *sql.DB, path string) {
			// Without the signing key the signed checkpoint still holds the
			// old head: the rewrite is caught there.
			evs := readEvents(t, path)
			prevHash := evs[k-2].Hash
			for _, ev := range evs[k-1:] {
				if ev.Seq == k {
					ev.Action = custos.AuditSubjectRead
				}
				ev.PrevHash = prevHash
				ev.Hash = audit.Hash(prevHash, ev)
				prevHash = ev.Hash
				mustExec(t, db, `UPDATE audit_events SET action = ?, prev_hash = ?, hash = ? WHERE seq = ?`, ev.Action, ev.PrevHash, ev.Hash, ev.Seq)
			}
		}, audit.KindAltered, -1}, // -1: the seq of the last checkpoint
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "copy")
			copyDir(t, src, cp)
			path := filepath.Join(cp, "custos.db")
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, db, path)
			var lastCP int64
			if err := db.QueryRow(`SELECT max(seq) FROM audit_checkpoints`).Scan(&lastCP); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			want := tc.wantSeq
			if want < 0 {
				want = lastCP
			}
			code, out, errOut := runCLI(t, ctx, "audit", "verify", "--data", cp)
			if code == 0 {
				t.Fatalf("audit verify passed a tampered log:\n%s", out)
			}
			m := brokenRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("audit verify: code %d, no BROKEN line\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			if m[1] != tc.wantKind || m[2] != strconv.FormatInt(want, 10) {
				t.Errorf("got %s at event %s, want %s at event %d\n%s", m[1], m[2], tc.wantKind, want, out)
			}
			if !strings.Contains(errOut, fmt.Sprintf("broken at event %d (%s)", want, tc.wantKind)) {
				t.Errorf("stderr does not name the event: %s", errOut)
			}
		})
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// readEvents reads the audit log of the database at path through the
// store, as audit verify does.
func readEvents(t *testing.T, path string) []*custos.AuditEvent {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var evs []*custos.AuditEvent
	if err := db.View(ctx, func(tx custos.Tx) (err error) {
		evs, err = tx.FindAuditEvents(ctx, custos.AuditFilter{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i+1, ev.Seq)
		}
	}
	return evs
}

func readEvent(t *testing.T, path string, seq int64) *custos.AuditEvent {
	t.Helper()
	evs := readEvents(t, path)
	if seq < 1 || seq > int64(len(evs)) {
		t.Fatalf("no event %d", seq)
	}
	return evs[seq-1]
}

var keyRowRE = regexp.MustCompile(`(?m)^v(\d+)\s+.*\s(current|active|retired)\s+(\d+)$`)

// keyStatus parses the table `keys status` prints: version → "state N".
func keyStatus(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, m := range keyRowRE.FindAllStringSubmatch(out, -1) {
		got["v"+m[1]] = m[2] + " " + m[3]
	}
	return got
}

// TestKeysRotate: a new master key version re-wraps every data key without
// re-encrypting data; the old version can then be retired, and everything
// still reads (S3, key rotation).
func TestKeysRotate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ids, mobiles, _, appKey := populate(t, dir, 3, 21)

	code, out, errOut := runCLI(t, ctx, "keys", "status", "--data", dir)
	if code != 0 {
		t.Fatalf("keys status: %d %s %s", code, out, errOut)
	}
	if diff := cmp.Diff(map[string]string{"v1": "current 3"}, keyStatus(t, out)); diff != "" {
		t.Errorf("status before rotation (-want +got):\n%s\n%s", diff, out)
	}

	code, out, errOut = runCLI(t, ctx, "keys", "rotate", "--data", dir)
	if code != 0 || !strings.Contains(out, "re-wrapped 3 data keys under master key v2") {
		t.Fatalf("keys rotate: code %d\n%s\n%s", code, out, errOut)
	}
	if st, err := os.Stat(filepath.Join(dir, "master.keys")); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("master.keys after rotation: got mode %v, want 0600", st.Mode().Perm())
	}
	code, out, errOut = runCLI(t, ctx, "keys", "status", "--data", dir)
	if code != 0 {
		t.Fatalf("keys status: %d %s %s", code, out, errOut)
	}
	if diff := cmp.Diff(map[string]string{"v1": "active 0", "v2": "current 3"}, keyStatus(t, out)); diff != "" {
		t.Errorf("status after rotation (-want +got):\n%s\n%s", diff, out)
	}

	// Reads after rotation, and a new subject is wrapped by v2.
	readAll := func(srv *testServer) {
		t.Helper()
		app := srv.client(appKey)
		for i, id := range ids {
			got, err := app.FindSubjectByID(ctx, []string{"account"}, id)
			if err != nil {
				t.Fatalf("read %s: %v", id, err)
			}
			if got.Fields["mobile"] != mobiles[i] {
				t.Errorf("read %s: got mobile %q, want %q", id, got.Fields["mobile"], mobiles[i])
			}
			found, err := app.FindSubjectByLookup(ctx, []string{"account"}, "mobile", mobiles[i])
			if err != nil || found.ID != id {
				t.Errorf("lookup %s: got %v, %v", id, found, err)
			}
		}
	}
	srv := startServer(t, dir)
	readAll(srv)
	gen := seed.New(rand.New(rand.NewPCG(22, 1)))
	s, err := srv.client(appKey).CreateSubject(ctx, seedPurposes, gen.Subject())
	if err != nil {
		t.Fatal(err)
	}
	got, err := srv.client(appKey).FindSubjectByID(ctx, []string{"account"}, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	ids, mobiles = append(ids, s.ID), append(mobiles, got.Fields["mobile"])
	srv.stop(t)

	code, out, errOut = runCLI(t, ctx, "keys", "retire", "-version", "1", "--data", dir)
	if code != 0 || !strings.Contains(out, "master key v1 retired") {
		t.Fatalf("keys retire -version 1: code %d\n%s\n%s", code, out, errOut)
	}
	_, out, _ = runCLI(t, ctx, "keys", "status", "--data", dir)
	if diff := cmp.Diff(map[string]string{"v1": "retired 0", "v2": "current 4"}, keyStatus(t, out)); diff != "" {
		t.Errorf("status after retiring v1 (-want +got):\n%s\n%s", diff, out)
	}
	srv = startServer(t, dir)
	readAll(srv)
	srv.stop(t)

	// The current version cannot be retired, nor a version that does not
	// exist; the message says why.
	code, _, errOut = runCLI(t, ctx, "keys", "retire", "-version", "2", "--data", dir)
	if code == 0 || !strings.Contains(errOut, "v2") || !strings.Contains(errOut, "rotate") {
		t.Errorf("retiring the current version: code %d, stderr %q; want a failure naming v2 and what to do", code, errOut)
	}
	code, _, errOut = runCLI(t, ctx, "keys", "retire", "-version", "9", "--data", dir)
	if code == 0 || !strings.Contains(errOut, "9") {
		t.Errorf("retiring a missing version: code %d, stderr %q", code, errOut)
	}
	_, out, _ = runCLI(t, ctx, "keys", "status", "--data", dir)
	if diff := cmp.Diff(map[string]string{"v1": "retired 0", "v2": "current 4"}, keyStatus(t, out)); diff != "" {
		t.Errorf("status after the refused retirements (-want +got):\n%s\n%s", diff, out)
	}
	// Rotation and retirement are audited and the chain still verifies.
	code, out, errOut = runCLI(t, ctx, "audit", "verify", "--data", dir)
	if code != 0 {
		t.Errorf("audit verify after rotation: %d\n%s\n%s", code, out, errOut)
	}
	evs := readEvents(t, filepath.Join(dir, "custos.db"))
	if !slices.ContainsFunc(evs, func(e *custos.AuditEvent) bool { return e.Action == custos.AuditKeysRotate }) ||
		!slices.ContainsFunc(evs, func(e *custos.AuditEvent) bool { return e.Action == custos.AuditKeysRetire }) {
		t.Errorf("rotation or retirement not audited")
	}
}

var importSummaryRE = regexp.MustCompile(`import imp-[0-9a-f]{24}: (\d+) stored, (\d+) rejected, (\d+) duplicate, (\d+) already imported`)

// importCounts runs an import and returns its summary counts.
func importCounts(t *testing.T, ctx context.Context, args ...string) (counts [4]int, code int, out, errOut string) {
	t.Helper()
	code, out, errOut = runCLI(t, ctx, append([]string{"import"}, args...)...)
	if m := importSummaryRE.FindStringSubmatch(out); m != nil {
		for i := range counts {
			counts[i], _ = strconv.Atoi(m[i+1])
		}
	}
	return counts, code, out, errOut
}

// writeCSV writes rows of fields under a header of every field name used;
// extra[i], when set, is appended to row i as a value in a column the
// header does not have.
func writeCSV(t *testing.T, path string, rows []map[string]string, extra map[int]string) {
	t.Helper()
	var header []string
	for _, r := range rows {
		for k := range r {
			if !slices.Contains(header, k) {
				header = append(header, k)
			}
		}
	}
	slices.Sort(header)
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(header); err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		rec := make([]string, len(header))
		for j, h := range header {
			rec[j] = r[h]
		}
		if v, ok := extra[i]; ok {
			rec = append(rec, v)
		}
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestImportResume: a CSV import stores the valid rows, reports each bad
// one by line number and reason without its values (C5), and running it
// again stores nothing twice.
func TestImportResume(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)

	gen := seed.New(rand.New(rand.NewPCG(31, 1)))
	rows := make([]map[string]string, 50)
	for i := range rows {
		rows[i] = gen.Subject().Fields
	}
	// Six bad rows, by index; the CSV line of row i is i+2.
	rows[7]["mobile"] = "1381234567"                             // 10 digits
	rows[15]["id_number"] = badResidentID(rows[15]["id_number"]) // check character
	rows[23]["gender"] = "robot"                                 // not in the enum
	rows[31]["email"] = "not-an-email"                           // format
	rows[40]["mobile"] = rows[2]["mobile"]                       // duplicate of an earlier row
	extra := map[int]string{46: "value-in-no-column-q1"}         // a value in a column the header lacks
	wantRejects := map[int]string{9: "rejected mobile:mobile_format", 17: "rejected id_number:resident_id_checksum",
		25: "rejected gender:enum", 33: "rejected email:email_format", 42: "duplicate mobile:duplicate",
		48: "rejected line:column_count"}

	work := t.TempDir()
	file := filepath.Join(work, "customers.csv")
	writeCSV(t, file, rows, extra)
	rejects := filepath.Join(work, "rejects.jsonl")
	args := []string{file, "-server", srv.URL, "-token", ps.AppKey, "-purpose", strings.Join(seedPurposes, ","),
		"-source", "crm-export-2026", "-batch", "10", "-rejects", rejects, "-quiet"}

	counts, code, out, errOut := importCounts(t, ctx, args...)
	if code != 0 || counts != [4]int{44, 5, 1, 0} {
		t.Fatalf("import: code %d, counts %v, want [44 5 1 0]\n%s\n%s", code, counts, out, errOut)
	}
	if !strings.Contains(out, rejects) {
		t.Errorf("the summary does not name the reject file: %s", out)
	}
	first, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(rejects); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("reject file mode: got %v, want 0600", st.Mode().Perm())
	}
	if n := bytes.Count(first, []byte("\n")); n != len(wantRejects) {
		t.Errorf("the reject file has %d lines, want %d", n, len(wantRejects))
	}
	got := map[int]string{}
	row2, err := ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", rows[2]["mobile"])
	if err != nil {
		t.Fatalf("row 2 was not stored: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(first))
	for sc.Scan() {
		var r importReject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("reject line %q: %v", sc.Text(), err)
		}
		got[r.Line] = r.Status + " " + strings.Join(violationSet(r.Violations), ",")
		if r.Status == custos.ImportDuplicate && r.SubjectID != row2.ID {
			t.Errorf("duplicate at line %d: got existing id %q, want %q (row of line 4)", r.Line, r.SubjectID, row2.ID)
		}
	}
	if diff := cmp.Diff(wantRejects, got); diff != "" {
		t.Errorf("reject file (-want +got):\n%s\n%s", diff, first)
	}
	// No value of any row is in the reject file.
	if bytes.Contains(first, []byte(extra[46])) {
		t.Errorf("the reject file holds the extra value of line 48")
	}
	for i, r := range rows {
		for _, f := range []string{"name", "mobile", "id_number", "email", "address", "bank_card", "member_no", "username"} {
			if v := r[f]; v != "" && bytes.Contains(first, []byte(v)) {
				t.Errorf("the reject file holds the %s of line %d", f, i+2)
			}
		}
	}

	// Stored rows are findable; refused rows are not.
	for i, r := range rows {
		_, isBad := wantRejects[i+2]
		field, value := "mobile", r["mobile"]
		if i == 7 || i == 40 {
			field, value = "email", r["email"]
		}
		s, err := ps.App.FindSubjectByLookup(ctx, []string{"account"}, field, value)
		switch {
		case isBad && custos.ErrorCode(err) != custos.ENOTFOUND:
			t.Errorf("line %d was refused but lookup by %s gives %v, %v", i+2, field, s, err)
		case !isBad && err != nil:
			t.Errorf("line %d was not stored: %v", i+2, err)
		}
	}
	importEvents := func() (allow, deny int) {
		action := custos.AuditSubjectImport
		for _, ev := range allAuditEvents(t, admin, custos.AuditFilter{Action: &action}) {
			if ev.Decision == custos.DecisionAllow {
				allow++
			} else {
				deny++
			}
		}
		return allow, deny
	}
	// The unparsable line never reaches the server: 44 stored, and 4
	// invalid plus 1 duplicate refused by it.
	if a, d := importEvents(); a != 44 || d != 5 {
		t.Errorf("audit after the import: got %d allowed and %d denied import events, want 44 and 5", a, d)
	}

	// The customer of line 2 is erased (R4); running the import again must
	// not bring them back.
	erased, err := ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", rows[0]["mobile"])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.EraseSubject(ctx, []string{"account"}, erased.ID, "customer request"); err != nil {
		t.Fatal(err)
	}

	// The identical command again: every line was handled by the first
	// run; nothing is stored, audited or rejected twice.
	counts, code, out, errOut = importCounts(t, ctx, args...)
	if code != 0 || counts[0] != 0 || counts[2] != 0 {
		t.Fatalf("second import: code %d, counts %v, want nothing stored or duplicate\n%s\n%s", code, counts, out, errOut)
	}
	if counts != [4]int{0, 0, 0, 50} {
		t.Errorf("second import: got counts %v, want [0 0 0 50]: every line was handled by the first run", counts)
	}
	second, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, second) {
		t.Errorf("the second run changed the reject file; it now holds:\n%s", second)
	}
	if a, d := importEvents(); a != 44 || d != 5 {
		t.Errorf("audit after the second import: got %d allowed and %d denied import events, want 44 and 5", a, d)
	}
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", rows[0]["mobile"])
	wantCode(t, err, custos.ENOTFOUND)
}

// TestImportInterruptedResume: an import stopped half-way (its context
// cancelled just after the server committed a batch whose answer never
// arrived) is finished by running the same command again, and every row is
// stored exactly once.
func TestImportInterruptedResume(t *testing.T) {
	bg := context.Background()
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	gen := seed.New(rand.New(rand.NewPCG(41, 1)))
	rows := make([]map[string]string, 30)
	for i := range rows {
		rows[i] = gen.Subject().Fields
	}
	// Line 15 (second batch) is refused by the server in the run whose
	// answer is lost.
	const badLine = 15
	rows[badLine-2]["id_number"] = badResidentID(rows[badLine-2]["id_number"])
	work := t.TempDir()
	file := filepath.Join(work, "customers.csv")
	writeCSV(t, file, rows, nil)
	rejects := filepath.Join(work, "rejects.jsonl")

	// A proxy forwards the second batch to the server, lets it commit, and
	// then cancels the importer before the answer reaches it.
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var batches atomic.Int32
	forwarded := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/imports/") || batches.Add(1) != 2 {
			rp.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		rp.ServeHTTP(rec, r.WithContext(context.WithoutCancel(r.Context())))
		if rec.Code != http.StatusOK {
			t.Errorf("second batch: server answered %d: %s", rec.Code, rec.Body)
		}
		close(forwarded)
		cancel()
		select {
		case <-r.Context().Done():
		case <-time.After(startTimeout):
			t.Error("the importer did not give up after its context was cancelled")
		}
	}))
	defer proxy.Close()

	// One batch at a time, so that the batch after the second is never
	// sent (TestImportInflightResume covers several in flight).
	args := []string{file, "-token", ps.AppKey, "-purpose", strings.Join(seedPurposes, ","), "-source", "crm", "-batch", "10",
		"-rejects", rejects, "-quiet", "-inflight", "1"}
	_, code, out, errOut := importCounts(t, ctx, append(args, "-server", proxy.URL)...)
	select {
	case <-forwarded:
	default:
		t.Fatalf("the second batch never reached the proxy: code %d\n%s\n%s", code, out, errOut)
	}
	if code == 0 || !strings.Contains(errOut, "run the same command again to resume") {
		t.Fatalf("interrupted import: code %d, want non-zero with a resume hint\n%s\n%s", code, out, errOut)
	}

	// Resume directly: the 20 rows of the first two batches are "already",
	// the last 10 are stored, none is a duplicate.
	counts, code, out, errOut := importCounts(t, bg, append(args, "-server", srv.URL)...)
	if code != 0 || counts != [4]int{10, 0, 0, 20} {
		t.Fatalf("resumed import: code %d, counts %v, want [10 0 0 20]\n%s\n%s", code, counts, out, errOut)
	}
	stored, denied := importAudit(t, admin)
	if len(stored) != 29 || denied != 1 {
		t.Errorf("got %d stored subjects and %d refused rows, want 29 and 1", len(stored), denied)
	}
	for i, r := range rows {
		s, err := ps.App.FindSubjectByLookup(bg, []string{"account"}, "mobile", r["mobile"])
		switch {
		case i+2 == badLine:
			if custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("line %d was refused, but lookup gives %v, %v", i+2, s, err)
			}
		case err != nil || stored[s.ID] != 1:
			t.Errorf("line %d: lookup gives %v, %v; stored %d times", i+2, s, err, stored[s.ID])
		}
	}
	// The refused line is reported even though the run that sent it never
	// heard the answer (C5: rejected rows are reported, never lost).
	rj, err := os.ReadFile(rejects)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"line":` + strconv.Itoa(badLine) + `\b`).Match(rj) {
		t.Errorf("after resuming, the reject file does not report line %d (refused in the interrupted run):\n%s\nresumed run stdout:\n%s", badLine, rj, out)
	}
}

// TestSeed: `custos seed` creates synthetic customers with records.
func TestSeed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	code, out, errOut := runCLI(t, ctx, "seed", "-subjects", "30", "-records", "2", "-seed", "7", "-quiet", "--data", dir)
	if code != 0 || !strings.Contains(out, "seeded 30 synthetic customers with 2 records each") {
		t.Fatalf("seed: code %d\n%s\n%s", code, out, errOut)
	}
	k := adminKeyRE.FindStringSubmatch(out)
	if k == nil {
		t.Fatalf("seed on a new directory printed no admin key:\n%s", out)
	}
	srv := startServer(t, dir)
	admin := srv.client(k[1])
	for _, c := range []struct {
		action string
		want   int
	}{{custos.AuditSubjectImport, 30}, {custos.AuditRecordCreate, 60}} {
		action := c.action
		evs := allAuditEvents(t, admin, custos.AuditFilter{Action: &action})
		n := 0
		for _, ev := range evs {
			if ev.Decision == custos.DecisionAllow && ev.ActorID == "system" {
				n++
			}
		}
		if n != c.want {
			t.Errorf("%s events by system: got %d, want %d", c.action, n, c.want)
		}
	}
	srv.stop(t)
}

var auditOKRE = regexp.MustCompile(`audit chain OK: (\d+) events, (\d+) signed checkpoints`)

// TestSeedAuditVerifies: on both stores, `custos seed` over several
// batches (one partial, several in flight) writes one import event per
// customer and one record event per record into a chain that `custos
// audit verify` accepts, with signed checkpoints; seeding the same store
// again adds as many and still verifies. On PostgreSQL the seed leaves
// every table with planner statistics (ANALYZE).
func TestSeedAuditVerifies(t *testing.T) {
	eachStore(t, func(t *testing.T, s bkStore) {
		bkInit(t, s)
		events := func() int {
			out, _ := cli(t, 0, append([]string{"audit", "verify"}, s.args()...)...)
			m := auditOKRE.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("audit verify: %s", out)
			}
			if m[2] == "0" && m[1] != "1" {
				t.Errorf("audit verify: no signed checkpoint over %s events", m[1])
			}
			n, err := strconv.Atoi(m[1])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := events()
		if s.store != "" {
			if missing, _ := unanalysed(t, s); len(missing) == 0 {
				t.Fatalf("the tables have planner statistics before the seed; the check below would prove nothing")
			}
		}
		const n = 1100
		out, _ := cli(t, 0, append([]string{"seed", "-subjects", strconv.Itoa(n), "-records", "2", "-seed", "5", "-inflight", "2", "-quiet"}, s.args()...)...)
		if !strings.Contains(out, fmt.Sprintf("seeded %d synthetic customers with 2 records each", n)) {
			t.Fatalf("seed: %s", out)
		}
		if s.store != "" {
			if missing, n := unanalysed(t, s); len(missing) > 0 || n < 10 {
				t.Errorf("after the seed %d of the %d tables have no planner statistics: %v", len(missing), n, missing)
			}
		}
		// One notice published, one import event per customer, one
		// record event per record.
		if got, want := events(), before+1+n+2*n; got != want {
			t.Errorf("audit verify: %d events after the seed, want %d", got, want)
		}
		second, _ := cli(t, 0, append([]string{"seed", "-subjects", "300", "-records", "1", "-seed", "6", "-quiet"}, s.args()...)...)
		if !strings.Contains(second, "seeded 300 synthetic customers with 1 records each") {
			t.Fatalf("second seed: %s", second)
		}
		if got, want := events(), before+1+n+2*n+300+300; got != want {
			t.Errorf("audit verify: %d events after the second seed, want %d", got, want)
		}
	})
}

// TestAuditVerifyIndex: someone with write access to a SQLite database
// deletes an event's entry from the audit query index, which lies outside
// the hash chain, so that GET /v1/audit would not find the event (S5).
// `custos audit verify` names the event and exits non-zero; with
// --reindex it files the events again, and the index verifies.
func TestAuditVerifyIndex(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	populate(t, src, 4, 11)
	code, out, errOut := runCLI(t, ctx, "audit", "verify", "--data", src)
	if code != 0 || !strings.Contains(out, "audit index OK") {
		t.Fatalf("untouched store: code %d\n%s\n%s", code, out, errOut)
	}

	const k = 5
	// The index file, with the database attached as the filer has it.
	db, err := sql.Open("sqlite", filepath.Join(src, "custos.db-auditindex"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	mustExec(t, db, `ATTACH DATABASE ? AS m`, filepath.Join(src, "custos.db"))
	// Every event filed, then one entry gone.
	mustExec(t, db, `DELETE FROM audit_blocks`)
	mustExec(t, db, `INSERT INTO audit_blocks (block, key, seq)
		SELECT seq >> 10, 's' || subject_id, seq FROM m.audit_events
		UNION ALL SELECT seq >> 10, 'a' || actor_id, seq FROM m.audit_events
		UNION ALL SELECT seq >> 10, 'c' || action, seq FROM m.audit_events
		UNION ALL SELECT seq >> 10, 't' || printf('%020d', max(time, 0)), seq FROM m.audit_events`)
	mustExec(t, db, `UPDATE audit_index SET filed = (SELECT max(seq) FROM m.audit_events),
		first_hash = (SELECT hash FROM m.audit_events ORDER BY seq LIMIT 1)`)
	mustExec(t, db, `DELETE FROM audit_blocks WHERE seq = ? AND key LIKE 's%'`, k)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, _ = runCLI(t, ctx, "audit", "verify", "--data", src)
	if code == 0 || !strings.Contains(out, fmt.Sprintf("audit index INCOMPLETE at event %d:", k)) || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("index missing event %d's entry: code %d, want non-zero naming it with the chain OK:\n%s", k, code, out)
	}
	code, out, errOut = runCLI(t, ctx, "audit", "verify", "--data", src, "--reindex")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("audit index repaired: events from %d filed again", k)) || !strings.Contains(out, "audit index OK") {
		t.Fatalf("--reindex: code %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, ctx, "audit", "verify", "--data", src)
	if code != 0 || !strings.Contains(out, "audit index OK") {
		t.Fatalf("after --reindex: code %d\n%s\n%s", code, out, errOut)
	}

	// The index file gone: the node says so on open, and files the log
	// again.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(filepath.Join(src, "custos.db-auditindex"+suffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	code, out, errOut = runCLI(t, ctx, "audit", "verify", "--data", src)
	if code != 0 || !strings.Contains(out, "audit index OK") || !strings.Contains(errOut, "mended on open") || !strings.Contains(errOut, "a new index") {
		t.Fatalf("without the index file: code %d, want 0 and the log saying it began a new index\n%s\n%s", code, out, errOut)
	}
}
