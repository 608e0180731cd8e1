package backup

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"io"
	"time"

	"custos"
	"custos/keys"
)

// Options configure Write.
type Options struct {
	Ring   *keys.Keyring // wraps the file key (its current version)
	Signer *keys.Signer  // signs the file
	Store  string        // "sqlite" or "postgres", for the header
	// Progress, if set, receives a line per table and about every
	// ProgressEvery rows (rows and tables done).
	Progress io.Writer
	// Rand is the randomness for the file key and nonces
	// (crypto/rand.Reader when nil).
	Rand io.Reader
	// Now returns the time written in the header (time.Now when nil).
	Now func() time.Time
}

// ProgressEvery is how many rows pass between two progress lines.
const ProgressEvery = 50000

// Write dumps d (one snapshot; see custos.Dumper) to w as an encrypted,
// signed backup and returns what it holds.
func Write(ctx context.Context, w io.Writer, d custos.Dumper, opts Options) (*Summary, error) {
	if opts.Ring == nil || opts.Signer == nil {
		return nil, custos.Errorf(custos.ESEALED, "A backup needs the master keys and the audit signing key.")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	migrations, err := d.AppliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	fileKey, err := keys.NewDEK(opts.Rand)
	if err != nil {
		return nil, err
	}
	defer keys.Zero(fileKey)
	kv, wrapped, err := opts.Ring.Wrap(fileKey)
	if err != nil {
		return nil, err
	}
	h := Header{
		Format: Format, FormatVersion: FormatVersion, ID: custos.NewID("bkp"),
		Created: now().UTC().Truncate(time.Microsecond), Store: opts.Store, Migrations: migrations,
		KEKVersion: kv, WrappedKey: wrapped, SignerKeyID: opts.Signer.KeyID(), ChunkSize: ChunkSize,
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not encode the backup header.", Err: err}
	}
	aead, err := chunkKey(fileKey, h.ID)
	if err != nil {
		return nil, err
	}
	hs := sha256.Sum256(hb)
	cw := &chunkWriter{w: w, aead: aead, headerSum: hs[:], rand: opts.Rand, body: sha256.New(), size: ChunkSize}
	if err := cw.raw(binary.BigEndian.AppendUint32([]byte(magic), uint32(len(hb)))); err != nil {
		return nil, err
	}
	if err := cw.raw(hb); err != nil {
		return nil, err
	}
	dw := &dumpWriter{cw: cw, sum: &Summary{Header: h, TableRows: map[string]int64{}}, progress: opts.Progress, start: time.Now()}
	if err := d.Dump(ctx, dw); err != nil {
		return nil, err
	}
	if err := dw.endTable(); err != nil {
		return nil, err
	}
	end := []byte{recEnd}
	end = binary.AppendUvarint(end, uint64(dw.sum.Tables))
	end = binary.AppendUvarint(end, uint64(dw.sum.Rows))
	if err := cw.write(end); err != nil {
		return nil, err
	}
	if err := cw.close(); err != nil {
		return nil, err
	}
	bodySum := cw.body.Sum(nil)
	tr := trailer{Chunks: cw.index, BodySHA256: bodySum, Signature: opts.Signer.Sign(signedMessage(hs[:], bodySum, cw.index))}
	tb, err := json.Marshal(tr)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not encode the backup trailer.", Err: err}
	}
	if err := cw.raw(binary.BigEndian.AppendUint32([]byte{frameTrailer}, uint32(len(tb)))); err != nil {
		return nil, err
	}
	if err := cw.raw(tb); err != nil {
		return nil, err
	}
	dw.sum.Chunks = cw.index
	if dw.progress != nil {
		fprintf(dw.progress, "backup: done: %d tables, %d rows, %d chunks in %s\n", dw.sum.Tables, dw.sum.Rows, cw.index, time.Since(dw.start).Round(time.Millisecond))
	}
	return dw.sum, nil
}

// chunkWriter seals the dump in chunks and writes frames.
type chunkWriter struct {
	w         io.Writer
	aead      *keys.AEAD
	headerSum []byte
	rand      io.Reader
	body      hash.Hash // over every chunk frame
	size      int
	buf       []byte
	index     int64
}

func (c *chunkWriter) raw(b []byte) error {
	if _, err := c.w.Write(b); err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Could not write the backup file.", Err: err}
	}
	return nil
}

// write adds plaintext; full chunks are sealed once more data follows
// them, so the final chunk is known when close is called.
func (c *chunkWriter) write(p []byte) error {
	c.buf = append(c.buf, p...)
	for len(c.buf) > c.size {
		if err := c.seal(c.buf[:c.size], false); err != nil {
			return err
		}
		c.buf = c.buf[c.size:]
	}
	// Keep the buffer from growing without bound through re-slicing.
	if cap(c.buf) > 4*c.size {
		c.buf = append([]byte(nil), c.buf...)
	}
	return nil
}

func (c *chunkWriter) close() error { return c.seal(c.buf, true) }

func (c *chunkWriter) seal(p []byte, final bool) error {
	ct, err := c.aead.Seal(p, chunkAAD(c.headerSum, c.index, final), c.rand)
	if err != nil {
		return err
	}
	typ := frameChunk
	if final {
		typ = frameFinal
	}
	frame := binary.BigEndian.AppendUint32([]byte{typ}, uint32(len(ct)))
	c.body.Write(frame)
	c.body.Write(ct)
	if err := c.raw(frame); err != nil {
		return err
	}
	if err := c.raw(ct); err != nil {
		return err
	}
	c.index++
	return nil
}

// dumpWriter encodes tables and rows (custos.DumpWriter).
type dumpWriter struct {
	cw       *chunkWriter
	sum      *Summary
	cur      *custos.DumpTable
	n        int64
	rec      []byte
	progress io.Writer
	start    time.Time
}

func (d *dumpWriter) Table(t *custos.DumpTable) error {
	if err := d.endTable(); err != nil {
		return err
	}
	if len(t.Columns) != len(t.Types) || len(t.Columns) == 0 {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: errBadTable(t.Name)}
	}
	b := []byte{recTable}
	b = appendString(b, t.Name)
	b = binary.AppendVarint(b, t.Rows)
	b = binary.AppendUvarint(b, uint64(len(t.Columns)))
	for i, c := range t.Columns {
		b = appendString(b, c)
		b = appendString(b, t.Types[i])
	}
	d.cur, d.n = t, 0
	d.sum.Tables++
	d.sum.Order = append(d.sum.Order, t.Name)
	if d.progress != nil {
		fprintf(d.progress, "backup: table %d %s: %d rows\n", d.sum.Tables, t.Name, t.Rows)
	}
	return d.cw.write(b)
}

func (d *dumpWriter) Row(values []any) error {
	if d.cur == nil || len(values) != len(d.cur.Columns) {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: errBadTable("row")}
	}
	b := append(d.rec[:0], recRow)
	var err error
	for _, v := range values {
		if b, err = appendValue(b, v); err != nil {
			return err
		}
	}
	d.rec = b
	d.n++
	d.sum.Rows++
	if d.progress != nil && d.sum.Rows%ProgressEvery == 0 {
		fprintf(d.progress, "backup: %d rows done (%s %d/%d)\n", d.sum.Rows, d.cur.Name, d.n, d.cur.Rows)
	}
	return d.cw.write(b)
}

// endTable checks the table just written had the rows it announced.
func (d *dumpWriter) endTable() error {
	if d.cur == nil {
		return nil
	}
	if d.n != d.cur.Rows {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: errBadTable(d.cur.Name)}
	}
	d.sum.TableRows[d.cur.Name] = d.n
	d.cur = nil
	return nil
}
