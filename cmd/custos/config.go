package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"custos/internal/gcheadroom"
)

// DefaultAddr is where custos listens unless told otherwise: loopback only.
const DefaultAddr = "127.0.0.1:8743"

// Config is everything a custos node needs. Precedence: flags, then
// CUSTOS_* environment variables, then the config file, then defaults.
// The master key is never part of it: it comes from the key file in the
// data directory, or CUSTOS_MASTER_KEYS / CUSTOS_MASTER_KEYS_FILE.
type Config struct {
	Addr      string `json:"addr"`
	Data      string `json:"data"`
	Store     string `json:"store"`      // "" = SQLite in Data; postgres://… later
	Catalog   string `json:"catalog"`    // path of a catalog JSON; "" = embedded default
	Retention string `json:"retention"`  // path of a retention rules JSON; "" = embedded default (docs/retention.md)
	LogFormat string `json:"log_format"` // text or json
	LogLevel  string `json:"log_level"`  // debug, info, warn, error
	Migrate   bool   `json:"migrate"`    // PostgreSQL: apply pending migrations at start
	MaxConns  int    `json:"max_conns"`  // PostgreSQL: connection pool size per node (0 = 16)
	// PGWriters is how many PostgreSQL commit groups a node runs at once
	// (0 = 2; at most half of max_conns). docs/deploy.md.
	PGWriters int `json:"pg_writers"`
	// ReadCache is how many customers' stored rows a node keeps in memory
	// for reads, on SQLite and on PostgreSQL (0 = 50,000; -1 = off).
	// docs/deploy.md.
	ReadCache int `json:"read_cache"`
	// GCHeadroomMiB is how far above the live heap, at least, the garbage
	// collector lets a node's heap grow before it collects (0 = auto: a
	// sixteenth of the memory limit, at most 128 MiB; -1 = off, Go's
	// default collector; GOGC in the environment overrides it).
	// docs/deploy.md.
	GCHeadroomMiB int `json:"gc_headroom_mib"`
	// ReadAuditDurability is when a node answers a request whose only
	// write is its audit event (a read, a lookup, a denial): "synced" (the
	// default, "" too) once the event is on disk, "committed" once it is
	// committed: on SQLite on disk within about 5 ms, on PostgreSQL
	// flushed by the WAL writer within wal_writer_delay. docs/deploy.md.
	ReadAuditDurability string `json:"read_audit_durability"`
	TLSCert             string `json:"tls_cert"` // PEM certificate file: serve HTTPS
	TLSKey              string `json:"tls_key"`  // PEM private key file
	// InsecureHTTP allows plain HTTP on a non-loopback address (behind a
	// TLS-terminating proxy on a trusted network).
	InsecureHTTP bool `json:"insecure_http"`
	// NoPlans lets serve accept writes that cite no approved collection
	// plan (C2). For development only: production keeps the default.
	NoPlans bool `json:"no_plans"`
	// RightsConfig: notifier, calendar, one-time codes, webhooks (rights.go).
	RightsConfig
	// ShredLedger is this node's shred ledger file (S7); "" = DIR/shred-ledger.jsonl.
	ShredLedger string `json:"shred_ledger"`
}

// DefaultConfig returns the embedded default: SQLite in ./custos-data,
// listening on loopback.
func DefaultConfig() Config {
	return Config{Addr: DefaultAddr, Data: "custos-data", LogFormat: "text", LogLevel: "info"}
}

// Validate checks the config and names the bad setting.
func (c Config) Validate() error {
	if c.Addr == "" || !strings.Contains(c.Addr, ":") {
		return fmt.Errorf("addr %q: want HOST:PORT", c.Addr)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key: give both or neither")
	}
	if c.TLSCert == "" && !c.InsecureHTTP && !loopback(c.Addr) {
		return fmt.Errorf("addr %q: plain HTTP is only served on loopback; give --tls-cert and --tls-key, or --insecure-http behind a TLS-terminating proxy", c.Addr)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("max_conns %d: want 0 (default) or more", c.MaxConns)
	}
	if c.PGWriters < 0 {
		return fmt.Errorf("pg_writers %d: want 0 (default) or more", c.PGWriters)
	}
	if c.ReadCache < -1 {
		return fmt.Errorf("read_cache %d: want -1 (off), 0 (default) or a number of customers", c.ReadCache)
	}
	if c.GCHeadroomMiB < -1 {
		return fmt.Errorf("gc_headroom_mib %d: want -1 (off), 0 (auto, the default) or a number of MiB", c.GCHeadroomMiB)
	}
	switch c.ReadAuditDurability {
	case "", "synced", "committed":
	default:
		return fmt.Errorf("read_audit_durability %q: want synced (default) or committed", c.ReadAuditDurability)
	}
	if c.Data == "" {
		return errors.New("data: a directory is required")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("log_format %q: want text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Store != "" && !strings.HasPrefix(c.Store, "sqlite:") && !c.Postgres() {
		return fmt.Errorf("store %q: want sqlite:PATH or postgres://…", redactURL(c.Store))
	}
	return c.RightsConfig.validate()
}

// loopback reports whether addr listens on the loopback interface only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Postgres reports whether the store is a PostgreSQL URL.
func (c Config) Postgres() bool {
	return strings.HasPrefix(c.Store, "postgres://") || strings.HasPrefix(c.Store, "postgresql://")
}

// redactURL hides the credentials of a store URL or key/value connection
// string: user info before "@" and the value of every password setting,
// wherever it stands and however it is spelt.
func redactURL(s string) string {
	if i := strings.Index(s, "@"); i > 0 {
		if j := strings.Index(s, "://"); j > 0 && j < i {
			s = s[:j+3] + "***" + s[i:]
		}
	}
	return passwordRE.ReplaceAllString(s, "${1}***")
}

// passwordRE matches a password setting's value: "password=…" up to the
// next separator, in URL queries and libpq key/value strings alike.
var passwordRE = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^&\s]*)`)

// ReadAuditCommitted reports whether read_audit_durability is
// "committed" (sqlite.Options.ReadAuditCommitted,
// postgres.Options.ReadAuditCommitted).
func (c Config) ReadAuditCommitted() bool { return c.ReadAuditDurability == "committed" }

// startGC starts the node's garbage collector headroom (gcheadroom): by
// default (gc_headroom_mib 0) gcheadroom.Auto of the process's memory
// limit, with Go's soft memory limit at nine tenths of a cgroup's. It
// returns the pacer to stop (nil when off) and how the setting was
// chosen, for the log and bench reports: "off", "GOGC=V", or the
// headroom and where it came from.
func startGC(c Config) (*gcheadroom.Pacer, string) {
	if v := os.Getenv("GOGC"); v != "" {
		return nil, "GOGC=" + v
	}
	switch {
	case c.GCHeadroomMiB < 0:
		return nil, "off"
	case c.GCHeadroomMiB > 0:
		return gcheadroom.Start(uint64(c.GCHeadroomMiB) << 20), fmt.Sprintf("%d MiB", c.GCHeadroomMiB)
	}
	l := gcheadroom.MemoryLimit()
	h := gcheadroom.Auto(l.Bytes)
	how := fmt.Sprintf("%d MiB (auto: a sixteenth of %s, at most %d MiB)", h>>20, l, gcheadroom.MaxAuto>>20)
	if h == 0 {
		how = fmt.Sprintf("off (auto: a sixteenth of %s is under Go's own 4 MiB)", l)
	}
	if soft := gcheadroom.SoftLimit(l); soft > 0 {
		how += fmt.Sprintf("; soft memory limit %d MiB, nine tenths of the cgroup's", soft>>20)
	}
	return gcheadroom.Start(h), how
}

// DBPath is the SQLite file.
func (c Config) DBPath() string {
	if p, ok := strings.CutPrefix(c.Store, "sqlite:"); ok && p != "" {
		return p
	}
	return filepath.Join(c.Data, "custos.db")
}

// KeyringPath is the master key file.
func (c Config) KeyringPath() string { return filepath.Join(c.Data, "master.keys") }

// LedgerPath is this node's shred ledger file.
func (c Config) LedgerPath() string {
	if c.ShredLedger != "" {
		return c.ShredLedger
	}
	return filepath.Join(c.Data, "shred-ledger.jsonl")
}

// SignerPath is the audit signing key file.
func (c Config) SignerPath() string { return filepath.Join(c.Data, "audit-signing.key") }

// newFlags returns a flag set for a command with the common flags bound;
// the command adds its own before calling parse.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *commonFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs, bindFlags(fs)
}

// parse parses args and loads the Config.
func (f *commonFlags) parse(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	if err := fs.Parse(args); err != nil {
		return Config{}, errUsage
	}
	return f.load(getenv)
}

// bindFlags registers the common flags on fs; they are applied by load.
func bindFlags(fs *flag.FlagSet) *commonFlags {
	f := &commonFlags{}
	fs.StringVar(&f.config, "config", "", "config file (JSON); default DIR/custos.json if present (env CUSTOS_CONFIG)")
	fs.StringVar(&f.addr, "addr", "", "listen address HOST:PORT (env CUSTOS_ADDR; default "+DefaultAddr+")")
	fs.StringVar(&f.data, "data", "", "data directory (env CUSTOS_DATA; default ./custos-data)")
	fs.StringVar(&f.store, "store", "", "store: sqlite:PATH or postgres://… (env CUSTOS_STORE; default DIR/custos.db)")
	fs.IntVar(&f.maxConns, "max-conns", 0, "PostgreSQL: connections per node (env CUSTOS_MAX_CONNS; default 16)")
	fs.IntVar(&f.pgWriters, "pg-writers", 0, "PostgreSQL: commit groups run at once per node (env CUSTOS_PG_WRITERS; default 2, at most half of --max-conns)")
	fs.IntVar(&f.readCache, "read-cache", 0, "customers whose stored rows reads keep in memory (SQLite and PostgreSQL); -1 turns it off (env CUSTOS_READ_CACHE; default 50000)")
	fs.IntVar(&f.gcHeadroom, "gc-headroom-mib", 0, "MiB the garbage collector lets the heap grow above the live heap, at least, before it collects: less CPU for at most that much more memory; -1 turns it off, for Go's default collector (env CUSTOS_GC_HEADROOM_MIB; default auto, a sixteenth of the memory limit (cgroup, GOMEMLIMIT or RAM), at most 128 MiB; GOGC overrides it)")
	fs.StringVar(&f.readAudit, "read-audit-durability", "", "answer a read once its audit event is on disk (synced, the default) or once it is committed, on disk within about 5 ms on SQLite, within wal_writer_delay on PostgreSQL (committed) (env CUSTOS_READ_AUDIT_DURABILITY)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate file: serve HTTPS (env CUSTOS_TLS_CERT)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key file (env CUSTOS_TLS_KEY)")
	fs.BoolVar(&f.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (env CUSTOS_INSECURE_HTTP=1)")
	fs.BoolVar(&f.noPlans, "no-plans", false, "DEVELOPMENT ONLY: accept writes without an approved collection plan (env CUSTOS_NO_PLANS=1)")
	fs.BoolVar(&f.migrate, "migrate", false, "PostgreSQL: apply pending schema migrations at start (env CUSTOS_MIGRATE=1)")
	fs.StringVar(&f.catalog, "catalog", "", "catalog JSON file (env CUSTOS_CATALOG; default: embedded retail catalog)")
	fs.StringVar(&f.retention, "retention", "", "retention rules JSON file (env CUSTOS_RETENTION; default: embedded rules)")
	fs.StringVar(&f.logFormat, "log-format", "", "text or json (env CUSTOS_LOG_FORMAT)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn, error (env CUSTOS_LOG_LEVEL)")
	f.rights.bind(fs)
	fs.StringVar(&f.shredLedger, "shred-ledger", "", "this node's shred ledger file (env CUSTOS_SHRED_LEDGER; default DIR/shred-ledger.jsonl)")
	return f
}

type commonFlags struct {
	config, addr, data, store, catalog, logFormat, logLevel string
	retention, readAudit                                    string
	migrate                                                 bool
	maxConns, readCache, pgWriters, gcHeadroom              int
	tlsCert, tlsKey                                         string
	shredLedger                                             string
	insecureHTTP                                            bool
	noPlans                                                 bool
	rights                                                  rightsFlags
}

// load builds the Config: defaults < file < environment < flags.
func (f *commonFlags) load(getenv func(string) string) (Config, error) {
	c := DefaultConfig()
	pick := func(flagV, envName string) string {
		if flagV != "" {
			return flagV
		}
		return getenv(envName)
	}
	data := pick(f.data, "CUSTOS_DATA")
	path := pick(f.config, "CUSTOS_CONFIG")
	if path == "" {
		dir := c.Data
		if data != "" {
			dir = data
		}
		if _, err := os.Stat(filepath.Join(dir, "custos.json")); err == nil {
			path = filepath.Join(dir, "custos.json")
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		explicit := f.config != "" || getenv("CUSTOS_CONFIG") != ""
		if err != nil && !(errors.Is(err, fs.ErrNotExist) && !explicit) {
			return c, fmt.Errorf("config: %w", err)
		}
		if err == nil {
			dec := json.NewDecoder(strings.NewReader(string(b)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c); err != nil {
				return c, fmt.Errorf("config %s: %w", path, err)
			}
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Addr, pick(f.addr, "CUSTOS_ADDR"))
	set(&c.Data, data)
	set(&c.Store, pick(f.store, "CUSTOS_STORE"))
	set(&c.Catalog, pick(f.catalog, "CUSTOS_CATALOG"))
	set(&c.Retention, pick(f.retention, "CUSTOS_RETENTION"))
	set(&c.LogFormat, pick(f.logFormat, "CUSTOS_LOG_FORMAT"))
	set(&c.LogLevel, pick(f.logLevel, "CUSTOS_LOG_LEVEL"))
	set(&c.TLSCert, pick(f.tlsCert, "CUSTOS_TLS_CERT"))
	set(&c.TLSKey, pick(f.tlsKey, "CUSTOS_TLS_KEY"))
	set(&c.ShredLedger, pick(f.shredLedger, "CUSTOS_SHRED_LEDGER"))
	set(&c.ReadAuditDurability, pick(f.readAudit, "CUSTOS_READ_AUDIT_DURABILITY"))
	if f.insecureHTTP || getenv("CUSTOS_INSECURE_HTTP") == "1" || getenv("CUSTOS_INSECURE_HTTP") == "true" {
		c.InsecureHTTP = true
	}
	for _, n := range []struct {
		flag int
		env  string
		min  int
		dst  *int
	}{
		{f.maxConns, "CUSTOS_MAX_CONNS", 1, &c.MaxConns},
		{f.pgWriters, "CUSTOS_PG_WRITERS", 1, &c.PGWriters},
		{f.readCache, "CUSTOS_READ_CACHE", -1, &c.ReadCache},
		{f.gcHeadroom, "CUSTOS_GC_HEADROOM_MIB", -1, &c.GCHeadroomMiB},
	} {
		// A flag's zero means "not given", as 0 means "default" in the file.
		if n.flag != 0 {
			*n.dst = n.flag
		} else if v := getenv(n.env); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil || i < n.min {
				return c, fmt.Errorf("%s %q: want an integer of at least %d", n.env, v, n.min)
			}
			*n.dst = i
		}
	}
	if f.noPlans || getenv("CUSTOS_NO_PLANS") == "1" || getenv("CUSTOS_NO_PLANS") == "true" {
		c.NoPlans = true
	}
	if f.migrate || getenv("CUSTOS_MIGRATE") == "1" || getenv("CUSTOS_MIGRATE") == "true" {
		c.Migrate = true
	}
	if err := f.rights.apply(&c.RightsConfig, getenv); err != nil {
		return c, err
	}
	return c, c.Validate()
}
