package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"custos"
)

// memTable is one table of a dump held in memory.
type memTable struct {
	table custos.DumpTable
	rows  [][]any
}

// memDump collects a dump (custos.DumpWriter).
type memDump struct{ tables []*memTable }

func (m *memDump) Table(t *custos.DumpTable) error {
	m.tables = append(m.tables, &memTable{table: *t})
	return nil
}

func (m *memDump) Row(values []any) error {
	row := make([]any, len(values))
	for i, v := range values {
		if b, ok := v.([]byte); ok {
			v = bytes.Clone(b)
		}
		row[i] = v
	}
	cur := m.tables[len(m.tables)-1]
	cur.rows = append(cur.rows, row)
	return nil
}

// rowCount is the number of rows across tables.
func (m *memDump) rowCount() int {
	n := 0
	for _, t := range m.tables {
		n += len(t.rows)
	}
	return n
}

// canonical renders the dump with each table's rows sorted, for equality.
func (m *memDump) canonical() []string {
	var out []string
	for _, t := range m.tables {
		out = append(out, fmt.Sprintf("table %s %v %v %d", t.table.Name, t.table.Columns, t.table.Types, t.table.Rows))
		var rows []string
		for _, r := range t.rows {
			rows = append(rows, fmt.Sprintf("%#v", r))
		}
		slices.Sort(rows)
		out = append(out, rows...)
	}
	return out
}

// memReader hands a memDump out (custos.DumpReader); after failAfter rows
// (when > 0) it fails, as a damaged backup file does.
type memReader struct {
	d         *memDump
	ti, ri    int
	read      int
	failAfter int
}

var errDamaged = errors.New("storetest: the dump is damaged")

func (r *memReader) NextTable() (*custos.DumpTable, error) {
	if r.ti >= len(r.d.tables) {
		return nil, io.EOF
	}
	r.ti++
	r.ri = 0
	t := r.d.tables[r.ti-1].table
	return &t, nil
}

func (r *memReader) NextRow() ([]any, error) {
	t := r.d.tables[r.ti-1]
	if r.ri >= len(t.rows) {
		return nil, io.EOF
	}
	if r.failAfter > 0 && r.read >= r.failAfter {
		return nil, errDamaged
	}
	r.ri++
	r.read++
	return t.rows[r.ri-1], nil
}

// testDump (S7): a dump of a store holding a row of every kind loads into
// an empty store of the same adapter as an identical store: same dump,
// same reads, and identity sequences that go on after the loaded rows.
// A load into a non-empty store is ECONFLICT and changes nothing; a dump
// that fails part-way loads nothing.
func testDump(t *testing.T, open OpenFunc) {
	src := openStore(t, open)
	d, ok := src.(custos.Dumper)
	if !ok {
		t.Skip("the store is not a custos.Dumper")
	}
	id := custos.SubjectID("sub_dump")
	update(t, src, func(ctx context.Context, tx custos.Tx) error {
		must(t, "principal", tx.InsertPrincipal(ctx, &custos.Principal{ID: "prn_d", Name: "dumper", Kind: custos.KindStaff, Roles: []string{"admin", "dpo"}, Blocked: true, CreatedAt: at(0)}))
		must(t, "api key", tx.InsertAPIKey(ctx, &custos.APIKey{ID: "key_d", PrincipalID: "prn_d", Hash: []byte{1, 2, 3}, CreatedAt: at(0)}))
		must(t, "data key", tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 2, Wrapped: []byte("wrapped"), CreatedAt: at(0)}))
		must(t, "subject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": {9, 9}}, CreatedAt: at(0), UpdatedAt: at(time.Second)}))
		must(t, "lookup", tx.InsertLookup(ctx, "mobile", []byte("hmac"), id))
		must(t, "record", tx.InsertRecord(ctx, &custos.StoredRecord{ID: "rec_d", SubjectID: id, Type: "order", Category: "transaction", OccurredAt: at(-time.Hour), CreatedAt: at(0), Sealed: []byte{7}}))
		must(t, "shred", tx.InsertShred(ctx, &custos.ShredEntry{SubjectID: "sub_gone", ShredAt: at(0), Reason: "request", ActorID: "prn_d"}))
		must(t, "import row", tx.InsertImportRow(ctx, &custos.ImportRow{Job: "job", Line: 2, Status: "rejected", Violations: []custos.Violation{{Field: "mobile", Rule: "mobile_format"}}, Message: "refused"}))
		must(t, "audit", tx.InsertAuditEvent(ctx, &custos.AuditEvent{Seq: 1, Time: at(0), ActorID: "prn_d", Action: "subject.create", SubjectID: id,
			Fields: []string{"name"}, Purposes: []string{"account"}, Decision: "allow", Hash: []byte("h1")}))
		must(t, "checkpoint", tx.InsertCheckpoint(ctx, &custos.AuditCheckpoint{Seq: 1, Hash: []byte("h1"), Time: at(0), KeyID: "k", Signature: []byte("sig")}))
		return tx.SetMeta(ctx, "bootstrap_admin", "prn_d")
	})
	var dump memDump
	must(t, "Dump", d.Dump(t.Context(), &dump))
	names := []string{}
	for _, tb := range dump.tables {
		names = append(names, tb.table.Name)
		if int64(len(tb.rows)) != tb.table.Rows {
			t.Errorf("table %s: announced %d rows, dumped %d", tb.table.Name, tb.table.Rows, len(tb.rows))
		}
	}
	for _, want := range []string{"subjects", "data_keys", "lookups", "records", "shred_ledger", "principals", "api_keys", "audit_events", "audit_checkpoints", "meta", "import_rows"} {
		if !slices.Contains(names, want) {
			t.Errorf("the dump lacks table %s (has %v)", want, names)
		}
	}
	if slices.Contains(names, "migrations") {
		t.Errorf("the dump holds the migrations table")
	}
	if i, j := slices.Index(names, "subjects"), slices.Index(names, "lookups"); i > j {
		t.Errorf("subjects (%d) come after lookups (%d), which reference them", i, j)
	}

	// A dump that fails part-way loads nothing.
	dst := openStore(t, open)
	err := dst.(custos.Dumper).Load(t.Context(), &memReader{d: &dump, failAfter: dump.rowCount() - 1})
	if !errors.Is(err, errDamaged) {
		t.Fatalf("Load of a damaged dump: got %v, want the reader's error", err)
	}
	var after memDump
	must(t, "Dump after a failed load", dst.(custos.Dumper).Dump(t.Context(), &after))
	if n := after.rowCount(); n != 0 {
		t.Fatalf("a failed load left %d rows", n)
	}

	must(t, "Load", dst.(custos.Dumper).Load(t.Context(), &memReader{d: &dump}))
	var again memDump
	must(t, "Dump of the loaded store", dst.(custos.Dumper).Dump(t.Context(), &again))
	diff(t, "dump of the loaded store", dump.canonical(), again.canonical())
	view(t, dst, func(ctx context.Context, tx custos.Tx) error {
		p, err := tx.GetPrincipal(ctx, "prn_d")
		must(t, "GetPrincipal", err)
		if !p.Blocked || !slices.Equal(p.Roles, []string{"admin", "dpo"}) {
			t.Errorf("loaded principal %+v", p)
		}
		if got, err := tx.FindLookup(ctx, "mobile", []byte("hmac")); err != nil || got != id {
			t.Errorf("loaded lookup: %v %v", got, err)
		}
		return nil
	})
	update(t, dst, func(ctx context.Context, tx custos.Tx) error {
		e := &custos.ShredEntry{SubjectID: "sub_next", ShredAt: at(time.Minute), Reason: "request", ActorID: "prn_d"}
		must(t, "InsertShred after a load", tx.InsertShred(ctx, e))
		if e.Seq != 2 {
			t.Errorf("the shred ledger seq after a load: got %d, want 2", e.Seq)
		}
		return nil
	})

	// Into a store that is not empty: refused, nothing changes.
	err = dst.(custos.Dumper).Load(t.Context(), &memReader{d: &dump})
	wantCode(t, "Load into a non-empty store", err, custos.ECONFLICT)
	var still memDump
	must(t, "Dump after a refused load", dst.(custos.Dumper).Dump(t.Context(), &still))
	if got, want := still.rowCount(), dump.rowCount()+1; got != want {
		t.Errorf("after a refused load: %d rows, want %d", got, want)
	}
}
