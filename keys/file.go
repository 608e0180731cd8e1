package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"custos"
)

// privateFileMode is the only mode a key file is written with: readable and
// writable by its owner, nobody else.
const privateFileMode fs.FileMode = 0o600

// maxKeyFileSize bounds what is read from a key file, so a wrong path (a
// log file, a device) cannot make the process read without limit.
const maxKeyFileSize = 1 << 20

// writePrivateFile writes data to path with mode 0600, atomically: the bytes
// go to a temporary file in the same directory, which is synced, then moved
// into place, and the directory is synced so the new name survives a crash.
// A reader therefore sees the old file or the new one, never half of one,
// and a crash during rotation cannot lose the master keys.
//
// With create set it refuses to replace an existing file (ECONFLICT): the
// temporary file is hard-linked to path, which fails if path exists, so two
// concurrent "init" runs cannot overwrite each other's keys.
func writePrivateFile(path string, data []byte, create bool, what string) (err error) {
	fail := func(cause error) error {
		return &custos.Error{Code: custos.EINTERNAL, Message: fmt.Sprintf("Could not write %s file.", what), Err: cause}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	defer func() {
		// The temporary name is removed on failure, and after a hard link
		// (create) where path now names the same file.
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) && err == nil {
			err = fail(rmErr)
		}
	}()

	werr := f.Chmod(privateFileMode)
	if werr == nil {
		_, werr = f.Write(data)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fail(werr)
	}

	if create {
		if lerr := os.Link(tmp, path); errors.Is(lerr, fs.ErrExist) {
			return &custos.Error{Code: custos.ECONFLICT, Message: fmt.Sprintf("The %s file %s already exists.", what, path), Err: lerr}
		} else if lerr != nil {
			return fail(lerr)
		}
	} else if rerr := os.Rename(tmp, path); rerr != nil {
		return fail(rerr)
	}
	if serr := syncDir(dir); serr != nil {
		return fail(serr)
	}
	return nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync on Windows
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir: %w", err)
	}
	serr := d.Sync()
	if cerr := d.Close(); serr == nil {
		serr = cerr
	}
	if serr != nil {
		return fmt.Errorf("sync dir: %w", serr)
	}
	return nil
}

// readPrivateFile reads a key file and refuses one that group or others may
// read or write: a master key readable by every local user protects nothing.
// The mode is checked on the opened file, so the file cannot be swapped
// between the check and the read.
//
// Returns ENOTFOUND if the file does not exist, EINVALID for a lax mode, a
// file that is not a regular file, or one larger than maxKeyFileSize.
func readPrivateFile(path, what string) (data []byte, err error) {
	fail := func(cause error) error {
		return &custos.Error{Code: custos.EINTERNAL, Message: fmt.Sprintf("Could not read %s file.", what), Err: cause}
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &custos.Error{Code: custos.ENOTFOUND, Message: fmt.Sprintf("The %s file %s does not exist.", what, path), Err: err}
	} else if err != nil {
		return nil, fail(err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fail(cerr)
		}
	}()

	fi, err := f.Stat()
	if err != nil {
		return nil, fail(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, custos.Errorf(custos.EINVALID, "The %s file %s is not a regular file.", what, path)
	}
	// Windows has no Unix permission bits; its ACLs are the operator's job.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, custos.Errorf(custos.EINVALID,
			"The %s file %s has mode %04o, so other users may read it; run chmod 600 %s.", what, path, perm, path)
	}

	data, err = io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fail(err)
	}
	if len(data) > maxKeyFileSize {
		zero(data)
		return nil, custos.Errorf(custos.EINVALID, "The %s file %s is too large.", what, path)
	}
	return data, nil
}

// decodeStrictJSON decodes exactly one JSON value into v, refusing unknown
// fields and trailing data. Its error keeps only the position of a fault:
// encoding/json quotes offending characters and values in its messages, and
// in a key file those may be key bytes, which must not reach a log.
func decodeStrictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return fmt.Errorf("keys: JSON syntax error at offset %d", syn.Offset)
		case errors.As(err, &typ):
			return fmt.Errorf("keys: JSON field %q has the wrong type", typ.Field)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("keys: JSON ends early")
		default:
			return errors.New("keys: malformed JSON or unknown field")
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("keys: data after the JSON value")
	}
	return nil
}
