package sqlite

import (
	"context"
	"errors"
	"io"
	"testing"

	"custos"
)

// brokenDump hands out a meta table of three rows and then fails, as a
// damaged backup does; after that every call fails.
type brokenDump struct {
	table, row int
}

var errBrokenDump = errors.New("damaged backup")

func (d *brokenDump) NextTable() (*custos.DumpTable, error) {
	d.table++
	if d.table > 1 {
		return nil, errBrokenDump
	}
	return &custos.DumpTable{Name: "meta", Columns: []string{"key", "value"}, Types: []string{"TEXT", "TEXT"}, Rows: 3}, nil
}

func (d *brokenDump) NextRow() ([]any, error) {
	if d.table > 1 {
		return nil, errBrokenDump
	}
	d.row++
	if d.row > 3 {
		return nil, io.EOF
	}
	return []any{"loaded" + string(rune('0'+d.row)), "v"}, nil
}

// TestLoadFailsInGroup: a restore that fails part way leaves nothing
// behind even when it shares a commit group with another write. Its rows
// go in through the raw transaction, so it must say that it wrote before
// them; otherwise the group took it for a member that failed before
// writing and committed its first table with the other member's write.
func TestLoadFailsInGroup(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	errs := runGroup(t, db,
		loadFn(ctx, &brokenDump{}),
		func(tx custos.Tx) error { return tx.SetMeta(ctx, "after", "v") })
	if !errors.Is(errs[0], errBrokenDump) {
		t.Fatalf("load: got %v, want the reader's error", errs[0])
	}
	if errs[1] != nil {
		t.Fatalf("the other member: %v", errs[1])
	}
	err := db.View(ctx, func(tx custos.Tx) error {
		if _, err := tx.GetMeta(ctx, "after"); err != nil {
			t.Errorf("the other member's write: %v", err)
		}
		for _, k := range []string{"loaded1", "loaded2", "loaded3"} {
			if _, err := tx.GetMeta(ctx, k); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("%s after the failed load: %v, want not found", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
