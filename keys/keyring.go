package keys

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"custos"
)

// Keyring holds the master keys (KEK) that wrap every subject's data key,
// plus the root keys of the blind index and of derived MAC keys.
//
// Master keys are numbered versions. Wrap always uses the current version;
// Unwrap accepts any version that is not retired, so rotation never has to
// touch data: new data keys are wrapped with the new version, old ones stay
// readable until a job re-wraps them and the old version is retired.
//
// The index root key is separate from the master keys and is never rotated
// with them: a blind index computed before a rotation must still match the
// same value after it, or every lookup would miss.
//
// A Keyring is immutable, as Vault's keyring is: Rotate and Retire return a
// changed copy and leave the receiver as it was, so a request that started
// with one keyring finishes with it while another goroutine installs the
// next. A Keyring is safe for concurrent use. A nil *Keyring is sealed: its
// Wrap and Unwrap return ESEALED.
type Keyring struct {
	current   int
	keys      map[int]*masterKey // shared between copies; never mutated
	indexRoot []byte
	macRoot   []byte
	indexer   *Indexer // shared between copies: the index root never changes
}

// masterKey is one master key version. It is never changed after it is
// built; retiring a version replaces it with a new masterKey without key.
type masterKey struct {
	version int
	created time.Time
	retired bool
	key     []byte      // nil once retired
	gcm     cipher.AEAD // nil once retired
}

// KeyVersionInfo describes one master key version. It carries no key bytes.
type KeyVersionInfo struct {
	Version int
	Created time.Time
	Retired bool
	Current bool
}

const (
	keyringFormat        = "custos-keyring"
	keyringFormatVersion = 1
	// maxKeyVersion bounds version numbers read from a file, so Rotate's
	// next number cannot overflow. Daily rotation for 2,700 years fits.
	maxKeyVersion = 1_000_000
)

// keyringFile is the JSON layout of a keyring file. Byte slices are base64.
type keyringFile struct {
	Format        string        `json:"format"`
	FormatVersion int           `json:"format_version"`
	Current       int           `json:"current"`
	Keys          []keyringItem `json:"keys"`
	IndexRoot     []byte        `json:"index_root"`
	MACRoot       []byte        `json:"mac_root"`
}

type keyringItem struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Retired bool      `json:"retired,omitempty"`
	Key     []byte    `json:"key,omitempty"`
}

// NewKeyring returns a keyring with master key version 1 and fresh index
// and MAC root keys, all read from rand (crypto/rand.Reader when nil). It is
// not saved anywhere; see CreateKeyringFile.
func NewKeyring(rand io.Reader) (*Keyring, error) {
	mk, err := newMasterKey(1, rand)
	if err != nil {
		return nil, err
	}
	indexRoot, err := randomBytes(rand, KeySize)
	if err != nil {
		return nil, err
	}
	macRoot, err := randomBytes(rand, KeySize)
	if err != nil {
		return nil, err
	}
	return &Keyring{
		current:   1,
		keys:      map[int]*masterKey{1: mk},
		indexRoot: indexRoot,
		macRoot:   macRoot,
		indexer:   newIndexer(indexRoot),
	}, nil
}

func newMasterKey(version int, rand io.Reader) (*masterKey, error) {
	key, err := randomBytes(rand, KeySize)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return &masterKey{version: version, created: time.Now().UTC(), key: key, gcm: gcm}, nil
}

// CreateKeyringFile creates a new keyring and writes it to path with mode
// 0600. Returns ECONFLICT if path exists: an existing keyring is never
// overwritten, since losing it makes every stored value unreadable.
func CreateKeyringFile(path string, rand io.Reader) (*Keyring, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, custos.Errorf(custos.ECONFLICT, "The keyring file %s already exists.", path)
	}
	k, err := NewKeyring(rand)
	if err != nil {
		return nil, err
	}
	if err := k.write(path, true); err != nil {
		return nil, err
	}
	return k, nil
}

// LoadKeyringFile reads a keyring written by CreateKeyringFile or Save.
// Returns ENOTFOUND if the file does not exist, and EINVALID if group or
// others may access it (the message says to chmod 600) or if it is not a
// valid keyring; the message never contains key bytes.
func LoadKeyringFile(path string) (*Keyring, error) {
	data, err := readPrivateFile(path, "keyring")
	if err != nil {
		return nil, err
	}
	defer zero(data)
	return ParseKeyring(data)
}

// LoadKeyringEnv reads a keyring from the environment variable name, which
// holds the keyring JSON in standard base64 (see EncodeEnv). It is the key
// provider for containers that receive secrets as environment variables.
// Returns ENOTFOUND if the variable is unset or empty and EINVALID if it is
// not a base64 keyring.
func LoadKeyringEnv(name string) (*Keyring, error) {
	v, ok := os.LookupEnv(name)
	if !ok || strings.TrimSpace(v) == "" {
		return nil, custos.Errorf(custos.ENOTFOUND, "The environment variable %s is not set.", name)
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		// The base64 error names only an offset, but the message stays
		// generic anyway.
		return nil, custos.Errorf(custos.EINVALID, "The environment variable %s does not hold a base64 keyring.", name)
	}
	defer zero(data)
	return ParseKeyring(data)
}

// ParseKeyring decodes keyring JSON as written by Save or Marshal; key
// providers that unwrap the keyring elsewhere (a KMS) hand their bytes
// here. Returns EINVALID for anything but a complete, consistent keyring.
// Error messages and causes never quote the input.
func ParseKeyring(data []byte) (*Keyring, error) {
	var f keyringFile
	// Decoding allocates the key buffers in f; the keyring keeps copies and
	// the originals are wiped on every path out. (The decoder's own buffer
	// of the base64 text is out of reach.)
	defer func() {
		for _, it := range f.Keys {
			zero(it.Key)
		}
		zero(f.IndexRoot)
		zero(f.MACRoot)
	}()
	if err := decodeStrictJSON(data, &f); err != nil {
		return nil, invalidKeyring("The keyring is not valid keyring JSON.", err)
	}
	if f.Format != keyringFormat {
		return nil, invalidKeyring("The file is not a custos keyring.", nil)
	}
	if f.FormatVersion != keyringFormatVersion {
		return nil, invalidKeyring(fmt.Sprintf("Keyring format version %d is not supported.", f.FormatVersion), nil)
	}
	if len(f.IndexRoot) != KeySize || len(f.MACRoot) != KeySize {
		return nil, invalidKeyring("The keyring's root keys have the wrong length.", nil)
	}

	k := &Keyring{
		current:   f.Current,
		keys:      make(map[int]*masterKey, len(f.Keys)),
		indexRoot: bytes.Clone(f.IndexRoot),
		macRoot:   bytes.Clone(f.MACRoot),
	}
	for _, it := range f.Keys {
		if it.Version < 1 || it.Version > maxKeyVersion {
			return nil, invalidKeyring(fmt.Sprintf("The keyring has a key version outside 1 to %d.", maxKeyVersion), nil)
		}
		if _, dup := k.keys[it.Version]; dup {
			return nil, invalidKeyring(fmt.Sprintf("The keyring has key version %d twice.", it.Version), nil)
		}
		mk := &masterKey{version: it.Version, created: it.Created, retired: it.Retired}
		switch {
		case it.Retired && len(it.Key) != 0:
			return nil, invalidKeyring(fmt.Sprintf("Retired key version %d still has key bytes.", it.Version), nil)
		case !it.Retired && len(it.Key) != KeySize:
			return nil, invalidKeyring(fmt.Sprintf("Key version %d has the wrong length.", it.Version), nil)
		case !it.Retired:
			gcm, err := newGCM(it.Key)
			if err != nil {
				return nil, err
			}
			mk.key = bytes.Clone(it.Key)
			mk.gcm = gcm
		}
		k.keys[it.Version] = mk
	}
	if cur, ok := k.keys[k.current]; !ok || cur.retired {
		return nil, invalidKeyring("The keyring's current key version is missing or retired.", nil)
	}
	k.indexer = newIndexer(k.indexRoot)
	return k, nil
}

func invalidKeyring(msg string, cause error) error {
	return &custos.Error{Code: custos.EINVALID, Message: msg, Err: cause}
}

// Marshal returns the keyring as JSON, key bytes included. It is how a key
// provider stores the keyring elsewhere (a KMS, a secret manager). The
// caller should Zero the result when done. Keyring deliberately has no
// MarshalJSON method, so it cannot end up in a JSON log or response by
// accident.
func (k *Keyring) Marshal() ([]byte, error) {
	if k == nil {
		return nil, errSealed()
	}
	f := keyringFile{
		Format:        keyringFormat,
		FormatVersion: keyringFormatVersion,
		Current:       k.current,
		IndexRoot:     k.indexRoot,
		MACRoot:       k.macRoot,
	}
	for _, v := range k.sortedVersions() {
		mk := k.keys[v]
		// A retired version keeps its number and dates, so the number is
		// never reused, but not its key: once written without it, data keys
		// wrapped by that version cannot be unwrapped from this file again.
		f.Keys = append(f.Keys, keyringItem{Version: mk.version, Created: mk.created, Retired: mk.retired, Key: mk.key})
	}
	// encoding/json keeps no copy we could wipe; the returned buffer is
	// the caller's to Zero.
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not encode keyring.", Err: err}
	}
	return append(data, '\n'), nil
}

// EncodeEnv returns the keyring as the base64 string LoadKeyringEnv reads.
func (k *Keyring) EncodeEnv() (string, error) {
	data, err := k.Marshal()
	if err != nil {
		return "", err
	}
	defer zero(data)
	return base64.StdEncoding.EncodeToString(data), nil
}

// Save writes the keyring to path with mode 0600, atomically replacing any
// file there: a crash leaves the old keyring or the new one, never a torn
// file.
func (k *Keyring) Save(path string) error {
	return k.write(path, false)
}

func (k *Keyring) write(path string, create bool) error {
	data, err := k.Marshal()
	if err != nil {
		return err
	}
	defer zero(data)
	return writePrivateFile(path, data, create, "keyring")
}

// CurrentVersion returns the master key version that Wrap uses, or 0 for a
// nil (sealed) keyring.
func (k *Keyring) CurrentVersion() int {
	if k == nil {
		return 0
	}
	return k.current
}

// Versions describes every master key version, oldest first.
func (k *Keyring) Versions() []KeyVersionInfo {
	if k == nil {
		return nil
	}
	vs := k.sortedVersions()
	out := make([]KeyVersionInfo, 0, len(vs))
	for _, v := range vs {
		mk := k.keys[v]
		out = append(out, KeyVersionInfo{Version: v, Created: mk.created, Retired: mk.retired, Current: v == k.current})
	}
	return out
}

func (k *Keyring) sortedVersions() []int {
	return slices.Sorted(maps.Keys(k.keys))
}

// Rotate returns a copy of the keyring with a new master key, read from
// rand, as its current version. The receiver is unchanged. The index and
// MAC root keys are kept, so blind indexes stay valid. Older versions still
// unwrap until they are retired.
func (k *Keyring) Rotate(rand io.Reader) (*Keyring, error) {
	if k == nil {
		return nil, errSealed()
	}
	next := slices.Max(k.sortedVersions()) + 1 // retired numbers are never reused
	mk, err := newMasterKey(next, rand)
	if err != nil {
		return nil, err
	}
	c := k.clone()
	c.keys[next] = mk
	c.current = next
	return c, nil
}

// Retire returns a copy of the keyring in which version v no longer has a
// key: data keys wrapped by v cannot be unwrapped any more, by this keyring
// or by any file it is saved to. The caller must first re-wrap every data
// key of that version (custos.Tx.CountDataKeysByKEK tells how many remain).
// Returns EINVALID for the current version and ENOTFOUND for an unknown
// one. Retiring a retired version returns an equal copy.
//
// The old key bytes are not wiped here: the receiver is immutable and may
// still be in use by a request in flight. They become garbage when the last
// reference to the receiver goes.
func (k *Keyring) Retire(v int) (*Keyring, error) {
	if k == nil {
		return nil, errSealed()
	}
	mk, ok := k.keys[v]
	if !ok {
		return nil, custos.Errorf(custos.ENOTFOUND, "Master key version %d does not exist.", v)
	}
	if v == k.current {
		return nil, custos.Errorf(custos.EINVALID, "Master key version %d is current and cannot be retired; rotate first.", v)
	}
	c := k.clone()
	c.keys[v] = &masterKey{version: v, created: mk.created, retired: true}
	return c, nil
}

func (k *Keyring) clone() *Keyring {
	return &Keyring{
		current:   k.current,
		keys:      maps.Clone(k.keys),
		indexRoot: k.indexRoot,
		macRoot:   k.macRoot,
		indexer:   k.indexer,
	}
}

// NewDEK returns a fresh 32-byte data key read from rand (crypto/rand.Reader
// when nil).
func NewDEK(rand io.Reader) ([]byte, error) {
	return randomBytes(rand, KeySize)
}

// wrapAAD binds a wrapped data key to the master key version that wrapped
// it, so a wrapped key cannot be relabelled with another version.
func wrapAAD(version int) []byte {
	return []byte("custos-dek|v" + strconv.Itoa(version))
}

// Wrap encrypts a 32-byte data key with the current master key, using
// AES-256-GCM with a random nonce from crypto/rand and the associated data
// "custos-dek|v<version>". It returns the version to store beside the
// wrapped key (custos.DataKey.KEKVersion). The format is that of Seal.
// Returns ESEALED for a nil keyring and EINVALID for a key of the wrong
// length.
//
// Each master key wraps one data key per subject (and per re-wrap), so the
// NIST limit of 2^32 random-nonce encryptions per key is out of reach for
// any realistic number of subjects between rotations.
func (k *Keyring) Wrap(dek []byte) (kekVersion int, wrapped []byte, err error) {
	if k == nil {
		return 0, nil, errSealed()
	}
	if len(dek) != KeySize {
		return 0, nil, custos.Errorf(custos.EINVALID, "A data key must be %d bytes.", KeySize)
	}
	mk := k.keys[k.current]
	wrapped, err = seal(mk.gcm, dek, wrapAAD(mk.version), rand.Reader)
	if err != nil {
		return 0, nil, err
	}
	return mk.version, wrapped, nil
}

// Unwrap decrypts a data key wrapped by master key version kekVersion.
// Returns ESEALED if that version is unknown or retired (its key is gone),
// and EINTERNAL if the wrapped key fails authentication (corrupted, or
// stored under another version); neither message contains any bytes. The
// caller should Zero the returned key once it has built an AEAD from it.
func (k *Keyring) Unwrap(kekVersion int, wrapped []byte) ([]byte, error) {
	if k == nil {
		return nil, errSealed()
	}
	mk, ok := k.keys[kekVersion]
	if !ok || mk.retired {
		return nil, custos.Errorf(custos.ESEALED, "Master key version %d is not available.", kekVersion)
	}
	dek, err := open(mk.gcm, nil, wrapped, wrapAAD(kekVersion))
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Wrapped data key failed authentication.", Err: err}
	}
	if len(dek) != KeySize {
		zero(dek)
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Wrapped data key has the wrong length."}
	}
	return dek, nil
}

// Indexer returns the blind indexer of this keyring. Copies made by Rotate
// and Retire share it, with its cache of derived field keys. Returns nil for
// a nil keyring.
func (k *Keyring) Indexer() *Indexer {
	if k == nil {
		return nil
	}
	return k.indexer
}

// DeriveKey returns a 32-byte key for purpose, derived with HKDF-SHA-256
// from the keyring's MAC root key with the info "custos key v1|"+purpose.
// Distinct purposes ("audit-hmac", "token-ff1", "webhook") get independent
// keys; the same purpose always gets the same key, across rotations. The
// caller should Zero the key when done. Returns ESEALED for a nil keyring.
func (k *Keyring) DeriveKey(purpose string) ([]byte, error) {
	if k == nil {
		return nil, errSealed()
	}
	key, err := hkdf.Key(sha256.New, k.macRoot, nil, "custos key v1|"+purpose, KeySize)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not derive key.", Err: err}
	}
	return key, nil
}

// String returns "[keyring vN]" with the current version; never key bytes.
func (k *Keyring) String() string {
	if k == nil {
		return "[keyring sealed]"
	}
	return "[keyring v" + strconv.Itoa(k.current) + "]"
}

// Format prints String for every verb, including %#v and %x, so that fmt
// never reflects into the key bytes.
func (k *Keyring) Format(f fmt.State, verb rune) { writeRedacted(f, k.String()) }

// LogValue returns String for log/slog.
func (k *Keyring) LogValue() slog.Value { return slog.StringValue(k.String()) }

func errSealed() error {
	return custos.Errorf(custos.ESEALED, "Keys are sealed.")
}
