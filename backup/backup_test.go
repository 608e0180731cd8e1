package backup_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/backup"
	"custos/keys"
	"custos/sqlite"
)

// fixture is a real SQLite store with n meta rows (enough for several
// chunks when n is large) and a principal, plus keys.
type fixture struct {
	db     *sqlite.DB
	ring   *keys.Keyring
	signer *keys.Signer
}

func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	err = db.Update(ctx, func(tx custos.Tx) error {
		if err := tx.InsertPrincipal(ctx, &custos.Principal{ID: "prn_a", Name: "plain-name", Kind: custos.KindService, Roles: []string{"admin"}, Blocked: true, CreatedAt: time.Now()}); err != nil {
			return err
		}
		for i := range n {
			if err := tx.SetMeta(ctx, "k"+strconv.Itoa(i), strings.Repeat("v", 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, ring: ring, signer: signer}
}

func (f *fixture) write(t testing.TB, progress *bytes.Buffer) ([]byte, *backup.Summary) {
	t.Helper()
	var buf bytes.Buffer
	opts := backup.Options{Ring: f.ring, Signer: f.signer, Store: "sqlite"}
	if progress != nil {
		opts.Progress = progress
	}
	sum, err := backup.Write(context.Background(), &buf, f.db, opts)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return buf.Bytes(), sum
}

// TestRoundTrip (S7): what Write reports is what Verify reads back; the
// plaintext stays out of the file and is in the decrypted payload;
// progress names tables and rows.
func TestRoundTrip(t *testing.T) {
	f := newFixture(t, 2000)
	var progress bytes.Buffer
	file, wrote := f.write(t, &progress)
	if wrote.Chunks < 3 || wrote.TableRows["meta"] != 2000 || wrote.TableRows["principals"] != 1 {
		t.Fatalf("wrote %+v", wrote)
	}
	read, err := backup.Verify(bytes.NewReader(file), f.ring, f.signer.Public())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if read.Rows != wrote.Rows || read.Tables != wrote.Tables || read.Chunks != wrote.Chunks || read.Header.ID != wrote.Header.ID {
		t.Errorf("read %+v, wrote %+v", read, wrote)
	}
	if bytes.Contains(file, []byte("plain-name")) || bytes.Contains(file, []byte("vvvvvvvv")) {
		t.Errorf("the backup file holds plaintext")
	}
	var payload bytes.Buffer
	if err := backup.Decrypt(bytes.NewReader(file), f.ring, f.signer.Public(), &payload); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(payload.Bytes(), []byte("plain-name")) {
		t.Errorf("the decrypted payload lacks the plain principal name")
	}
	if p := progress.String(); !strings.Contains(p, "backup: table") || !strings.Contains(p, "meta: 2000 rows") || !strings.Contains(p, "backup: done:") {
		t.Errorf("progress:\n%s", p)
	}
}

// TestWrongKeysRefused: another installation's master keys or signing key
// cannot read or vouch for a backup, and say so.
func TestWrongKeysRefused(t *testing.T) {
	f := newFixture(t, 10)
	file, _ := f.write(t, nil)
	other := newFixture(t, 0)
	if _, err := backup.Verify(bytes.NewReader(file), other.ring, f.signer.Public()); custos.ErrorCode(err) != custos.EINVALID ||
		!strings.Contains(custos.ErrorMessage(err), "does not unwrap") {
		t.Errorf("other master keys: %v", err)
	}
	if _, err := backup.Verify(bytes.NewReader(file), f.ring, other.signer.Public()); custos.ErrorCode(err) != custos.EINVALID ||
		!strings.Contains(custos.ErrorMessage(err), "signed by key") {
		t.Errorf("other signing key: %v", err)
	}
	rotated, err := f.ring.Rotate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(bytes.NewReader(file), rotated, f.signer.Public()); err != nil {
		t.Errorf("a rotated keyring still holding the old version: %v", err)
	}
	retired, err := rotated.Retire(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Verify(bytes.NewReader(file), retired, f.signer.Public()); custos.ErrorCode(err) != custos.ESEALED {
		t.Errorf("master key version retired: got %v, want ESEALED (the backup is crypto-shredded)", err)
	}
}

// FuzzVerify: no input makes the reader panic, and only the untouched
// file verifies.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, 700)
	file, _ := fx.write(f, nil)
	f.Add(file)
	f.Add(file[:len(file)/2])
	f.Add([]byte("CUSTOSBK\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := backup.Verify(bytes.NewReader(b), fx.ring, fx.signer.Public())
		if err == nil && !bytes.Equal(b, file) {
			t.Fatalf("a changed file verified")
		}
	})
}
