package backup

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"time"

	"custos"
	"custos/keys"
)

// Reader reads a backup file and hands out its dump (custos.DumpReader).
// Everything it returns has passed chunk authentication; NextTable returns
// io.EOF only once the final chunk, the dump's totals, the body digest and
// the Ed25519 signature have all been checked, so a load that commits on
// io.EOF never commits a file that is altered, truncated or not signed by
// the expected key.
type Reader struct {
	h         *Header
	headerSum []byte
	pub       ed25519.PublicKey
	src       *bufio.Reader
	aead      *keys.AEAD
	body      hash.Hash
	index     int64 // next chunk
	final     bool  // the final chunk was read
	pt        []byte
	pos       int

	cur      *custos.DumpTable
	left     int64 // rows of cur not read yet
	row      []any
	tables   int
	rows     int64
	done     bool
	sum      *Summary
	progress io.Writer
	start    time.Time
}

// NewReader reads and checks the header of the backup in r, unwraps its
// file key with ring and expects the signature of pub. Errors: EINVALID
// for a file that is not a backup or is damaged, ESEALED when ring cannot
// unwrap the file key (another installation's keys, or the master key
// version was retired), EINVALID naming both key ids when pub is not the
// key that signed it.
func NewReader(r io.Reader, ring *keys.Keyring, pub ed25519.PublicKey) (*Reader, error) {
	src := bufio.NewReaderSize(r, 1<<16)
	head := make([]byte, len(magic)+4)
	if err := readFull(src, head, "the header"); err != nil {
		return nil, err
	}
	if string(head[:len(magic)]) != magic {
		return nil, custos.Errorf(custos.EINVALID, "The file is not a custos backup.")
	}
	n := binary.BigEndian.Uint32(head[len(magic):])
	if n == 0 || n > maxHeader {
		return nil, corrupt("the header length is not valid")
	}
	hb := make([]byte, n)
	if err := readFull(src, hb, "the header"); err != nil {
		return nil, err
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return nil, err
	}
	if id := keys.PublicKeyID(pub); id != h.SignerKeyID {
		return nil, custos.Errorf(custos.EINVALID, "The backup says it was signed by key %s, but the signing key given is %s (another installation, or an altered header).", h.SignerKeyID, id)
	}
	fileKey, err := ring.Unwrap(h.KEKVersion, h.WrappedKey)
	if err != nil {
		if custos.ErrorCode(err) == custos.ESEALED {
			return nil, custos.Errorf(custos.ESEALED, "The backup's file key is wrapped by master key version %d, which this keyring does not hold (retired, or another installation's keys).", h.KEKVersion)
		}
		return nil, corrupt("its file key does not unwrap with these master keys (another installation's keys, or an altered header)")
	}
	defer keys.Zero(fileKey)
	aead, err := chunkKey(fileKey, h.ID)
	if err != nil {
		return nil, err
	}
	hs := sha256.Sum256(hb)
	return &Reader{h: h, headerSum: hs[:], pub: pub, src: src, aead: aead, body: sha256.New(),
		sum: &Summary{Header: *h, TableRows: map[string]int64{}}, start: time.Now()}, nil
}

// Header returns the file's header (checked against the signature only
// once NextTable has returned io.EOF).
func (r *Reader) Header() Header { return *r.h }

// SetProgress makes the reader print a line per table and about every
// ProgressEvery rows to w, each starting with what.
func (r *Reader) SetProgress(w io.Writer) { r.progress = w }

// Summary returns what was read so far.
func (r *Reader) Summary() *Summary { return r.sum }

// nextChunk reads, authenticates and decrypts the next chunk into r.pt.
// It returns io.EOF when the final chunk has been consumed.
func (r *Reader) nextChunk() error {
	if r.final {
		return io.EOF
	}
	fh := make([]byte, 5)
	if err := readFull(r.src, fh, fmt.Sprintf("chunk %d", r.index)); err != nil {
		return corrupt("the file ends before its final chunk (truncated at chunk %d)", r.index)
	}
	typ, n := fh[0], binary.BigEndian.Uint32(fh[1:])
	switch typ {
	case frameChunk, frameFinal:
	case frameTrailer:
		return corrupt("the file ends before its final chunk (chunks dropped after chunk %d)", r.index-1)
	default:
		return corrupt("chunk %d has an unknown frame type", r.index)
	}
	if n < keys.Overhead || int(n) > r.h.ChunkSize+keys.Overhead {
		return corrupt("chunk %d has an invalid length", r.index)
	}
	ct := make([]byte, n)
	if err := readFull(r.src, ct, fmt.Sprintf("chunk %d", r.index)); err != nil {
		return corrupt("the file ends inside chunk %d (truncated)", r.index)
	}
	final := typ == frameFinal
	pt, err := r.aead.Open(ct, chunkAAD(r.headerSum, r.index, final))
	if err != nil {
		return corrupt("chunk %d fails authentication", r.index)
	}
	if !final && len(pt) != r.h.ChunkSize {
		return corrupt("chunk %d is short", r.index)
	}
	r.body.Write(fh)
	r.body.Write(ct)
	r.index++
	r.final = final
	r.pt, r.pos = pt, 0
	return nil
}

// ReadByte returns the next byte of the dump.
func (r *Reader) ReadByte() (byte, error) {
	for r.pos >= len(r.pt) {
		if err := r.nextChunk(); err != nil {
			return 0, err
		}
	}
	b := r.pt[r.pos]
	r.pos++
	return b, nil
}

// Read reads the dump's plaintext.
func (r *Reader) Read(p []byte) (int, error) {
	for r.pos >= len(r.pt) {
		if err := r.nextChunk(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.pt[r.pos:])
	r.pos += n
	return n, nil
}

// short turns an end of the dump inside a record into a corrupt error.
func short(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("the dump ends inside a record")
	}
	return err
}

func (r *Reader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, short(err)
	}
	return v, nil
}

func (r *Reader) bytes(max uint64) ([]byte, error) {
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, corrupt("a value is longer than the file allows")
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, short(err)
	}
	return b, nil
}

func (r *Reader) str() (string, error) {
	b, err := r.bytes(1 << 16)
	return string(b), err
}

// NextTable implements custos.DumpReader.
func (r *Reader) NextTable() (*custos.DumpTable, error) {
	if r.done {
		return nil, io.EOF
	}
	for r.cur != nil { // skip what the caller left of the current table
		if _, err := r.NextRow(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
	}
	typ, err := r.ReadByte()
	if err != nil {
		return nil, short(err)
	}
	switch typ {
	case recTable:
		t := &custos.DumpTable{}
		if t.Name, err = r.str(); err != nil {
			return nil, err
		}
		if t.Rows, err = binary.ReadVarint(r); err != nil {
			return nil, short(err)
		}
		nc, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		if t.Rows < 0 || nc == 0 || nc > 4096 {
			return nil, corrupt("table %d has an invalid description", r.tables+1)
		}
		for range nc {
			c, err := r.str()
			if err != nil {
				return nil, err
			}
			ty, err := r.str()
			if err != nil {
				return nil, err
			}
			t.Columns, t.Types = append(t.Columns, c), append(t.Types, ty)
		}
		r.cur, r.left = t, t.Rows
		r.row = make([]any, nc)
		r.tables++
		r.sum.Tables = r.tables
		r.sum.Order = append(r.sum.Order, t.Name)
		r.sum.TableRows[t.Name] = t.Rows
		if r.progress != nil {
			fprintf(r.progress, "restore: table %d %s: %d rows\n", r.tables, t.Name, t.Rows)
		}
		return t, nil
	case recEnd:
		tables, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		rows, err := r.uvarint()
		if err != nil {
			return nil, err
		}
		if tables != uint64(r.tables) || rows != uint64(r.rows) {
			return nil, corrupt("the dump's totals do not match its contents")
		}
		if err := r.finish(); err != nil {
			return nil, err
		}
		r.done = true
		return nil, io.EOF
	case recRow:
		return nil, corrupt("a row stands outside any table")
	}
	return nil, corrupt("unknown record type")
}

// NextRow implements custos.DumpReader.
func (r *Reader) NextRow() ([]any, error) {
	if r.cur == nil {
		return nil, io.EOF
	}
	if r.left == 0 {
		r.cur = nil
		return nil, io.EOF
	}
	typ, err := r.ReadByte()
	if err != nil {
		return nil, short(err)
	}
	if typ != recRow {
		return nil, corrupt("table %s has fewer rows than it announces", r.cur.Name)
	}
	for i := range r.row {
		tag, err := r.ReadByte()
		if err != nil {
			return nil, short(err)
		}
		switch tag {
		case tagNull:
			r.row[i] = nil
		case tagInt:
			v, err := binary.ReadVarint(r)
			if err != nil {
				return nil, short(err)
			}
			r.row[i] = v
		case tagReal:
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, short(err)
			}
			r.row[i] = math.Float64frombits(binary.BigEndian.Uint64(b[:]))
		case tagText:
			b, err := r.bytes(1 << 30)
			if err != nil {
				return nil, err
			}
			r.row[i] = string(b)
		case tagBlob:
			b, err := r.bytes(1 << 30)
			if err != nil {
				return nil, err
			}
			r.row[i] = b
		case tagFalse:
			r.row[i] = false
		case tagTrue:
			r.row[i] = true
		default:
			return nil, corrupt("a row of table %s holds an unknown value type", r.cur.Name)
		}
	}
	r.left--
	r.rows++
	r.sum.Rows = r.rows
	if r.progress != nil && r.rows%ProgressEvery == 0 {
		fprintf(r.progress, "restore: %d rows done (%s %d/%d)\n", r.rows, r.cur.Name, r.cur.Rows-r.left, r.cur.Rows)
	}
	return r.row, nil
}

// finish checks that the dump ended with the final chunk, then the
// trailer: chunk count, body digest and signature, and nothing after it.
func (r *Reader) finish() error {
	if r.pos != len(r.pt) || !r.final {
		if r.pos == len(r.pt) {
			// The dump is complete but its final flag is missing: chunks
			// after this one were cut and replaced, or never came.
			if err := r.nextChunk(); err != nil {
				return err
			}
		}
		return corrupt("data follows the end of the dump")
	}
	fh := make([]byte, 5)
	if err := readFull(r.src, fh, "the trailer"); err != nil {
		return corrupt("the signature is missing (truncated)")
	}
	if fh[0] != frameTrailer {
		return corrupt("a frame follows the final chunk")
	}
	n := binary.BigEndian.Uint32(fh[1:])
	if n == 0 || n > maxHeader {
		return corrupt("the trailer length is not valid")
	}
	tb := make([]byte, n)
	if err := readFull(r.src, tb, "the trailer"); err != nil {
		return corrupt("the signature is missing (truncated)")
	}
	var tr trailer
	if err := json.Unmarshal(tb, &tr); err != nil {
		return corrupt("the trailer is not valid")
	}
	bodySum := r.body.Sum(nil)
	if tr.Chunks != r.index || subtle.ConstantTimeCompare(tr.BodySHA256, bodySum) != 1 {
		return corrupt("the chunk count or digest in the trailer does not match the chunks")
	}
	if !keys.Verify(r.pub, signedMessage(r.headerSum, bodySum, r.index), tr.Signature) {
		return corrupt("the signature does not verify with signing key %s", keys.PublicKeyID(r.pub))
	}
	if _, err := r.src.ReadByte(); err == nil {
		return corrupt("bytes follow the signature")
	} else if !errors.Is(err, io.EOF) {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Could not read the backup file.", Err: err}
	}
	r.sum.Chunks = r.index
	if r.progress != nil {
		fprintf(r.progress, "restore: read %d tables, %d rows, %d chunks; signature OK (%s)\n", r.tables, r.rows, r.index, time.Since(r.start).Round(time.Millisecond))
	}
	return nil
}

// Verify reads the whole backup in r — every chunk authenticated, the
// dump decoded, totals, digest and signature checked — and returns what
// it holds. It writes nothing anywhere.
func Verify(r io.Reader, ring *keys.Keyring, pub ed25519.PublicKey) (*Summary, error) {
	br, err := NewReader(r, ring, pub)
	if err != nil {
		return nil, err
	}
	for {
		if _, err := br.NextTable(); errors.Is(err, io.EOF) {
			return br.sum, nil
		} else if err != nil {
			return nil, err
		}
	}
}

// Decrypt writes the decrypted dump of the backup in r to w and checks
// the whole file as Verify does; on an error, what was written is not to
// be trusted. Tests use it to search the payload for personal data.
func Decrypt(r io.Reader, ring *keys.Keyring, pub ed25519.PublicKey, w io.Writer) error {
	br, err := NewReader(r, ring, pub)
	if err != nil {
		return err
	}
	for {
		if err := br.nextChunk(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		if _, err := w.Write(br.pt); err != nil {
			return err
		}
	}
	br.pos = len(br.pt)
	return br.finish()
}

func errBadTable(what string) error {
	return fmt.Errorf("backup: dump of %s does not match its description", what)
}

// fprintf writes a progress line; a failing progress writer does not stop
// a backup.
func fprintf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format, args...) //nolint:errcheck // progress output only
}
