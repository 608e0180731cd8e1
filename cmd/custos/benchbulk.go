package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"custos/seed"
)

// custos bench -bulk N measures issue 7's bulk-load target end to end, as
// an operator would meet it: `custos import` of N generated customers
// (a CSV file, written first) into a fresh node that `custos serve` runs,
// then `custos seed` of N customers into another fresh store. Each is a
// process of this binary of its own, so that the wall time, the CPU and
// the peak resident memory are those of the process that holds the store,
// read from the kernel when it exits (wait4's rusage, whose peak is the
// VmHWM that /proc/PID/status shows), and nothing of the benchmark's own
// is counted.
//
// With -store postgres://…/DB the loads go into two schemas made for them
// in DB (custos_bulk_…_import and …_seed), dropped afterwards unless
// -keep: the measure of the store the issue names for production. The
// processes measured are then custos's own; PostgreSQL's server processes
// hold the data and are not counted in the peak.

// Bulk-load targets (issue 7): under five minutes and under 500 MB of peak
// memory for a million customers; seed "as fast" is judged by the same.
const (
	bulkTargetWall = 5 * time.Minute
	bulkTargetRSS  = 500_000_000 // bytes
)

// bulkPurposes are the purposes the import gives every customer: those
// the synthetic customers' fields need for the default catalog.
const bulkPurposes = "account,fulfilment,legal-obligation,risk-control"

// benchBulkReport is what -bulk writes as JSON.
type benchBulkReport struct {
	Kind       string         `json:"kind"` // "bulk"
	Version    string         `json:"version"`
	StartedAt  time.Time      `json:"started_at"`
	GoVersion  string         `json:"go_version"`
	NumCPU     int            `json:"num_cpu"`
	CPUModel   string         `json:"cpu_model,omitempty"`
	LoadAvg    string         `json:"loadavg_at_start,omitempty"`
	Store      string         `json:"store"` // "sqlite" or "postgres"
	Customers  int            `json:"customers"`
	Seed       uint64         `json:"seed"`
	CSVSeconds float64        `json:"csv_seconds"`
	Runs       []benchBulkRun `json:"runs"`
}

// benchBulkRun is one load: Name "import" or "seed". WallSeconds is the
// loading command's, from its start to its exit; CPUSeconds and
// PeakRSSBytes are the store's process's (serve for an import, which
// includes its start-up, seed itself for a seed); ClientCPUSeconds is
// custos import's own CPU.
type benchBulkRun struct {
	Name             string  `json:"name"`
	Stored           int     `json:"stored"`
	WallSeconds      float64 `json:"wall_seconds"`
	CPUSeconds       float64 `json:"cpu_seconds"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	// Met is set only for a load of bulkTargetCustomers; a smaller or
	// larger one judges nothing.
	Met bool `json:"met"`
}

// bulkTargetCustomers is how many customers the target names.
const bulkTargetCustomers = 1_000_000

// judge sets Met: a load of the target's size that stored every customer
// within the wall time and memory targets.
func (r *benchBulkRun) judge(n int) {
	r.Met = n == bulkTargetCustomers && r.Stored == n &&
		r.WallSeconds < bulkTargetWall.Seconds() && r.PeakRSSBytes < bulkTargetRSS
}

var (
	bulkAdminKeyRE = regexp.MustCompile(`admin key: (\S+)`)
	bulkImportRE   = regexp.MustCompile(`: (\d+) stored, (\d+) rejected`)
	bulkSeedRE     = regexp.MustCompile(`seeded (\d+) synthetic customers`)
)

// benchBulk runs the two loads of n customers with this binary (exe) in
// dir, which it fills with the CSV file and two data directories. say
// reports progress.
func benchBulk(ctx context.Context, exe string, n int, seedV uint64, dir string, stores bulkStores, say func(string, ...any), progress io.Writer) (*benchBulkReport, error) {
	rep := &benchBulkReport{Kind: "bulk", Version: version, StartedAt: time.Now().UTC().Truncate(time.Second),
		GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), CPUModel: benchCPUModel(), LoadAvg: benchLoadAvg(),
		Store: stores.kind(), Customers: n, Seed: seedV}

	csvPath := filepath.Join(dir, "customers.csv")
	say("writing %d synthetic customers to %s", n, csvPath)
	start := time.Now()
	if err := bulkWriteCSV(csvPath, n, seedV); err != nil {
		return nil, fmt.Errorf("bench: writing the customers' file: %w", err)
	}
	rep.CSVSeconds = time.Since(start).Seconds()

	imp, err := bulkImport(ctx, exe, filepath.Join(dir, "import"), stores.env("import"), csvPath, say, progress)
	if err != nil {
		return nil, err
	}
	imp.judge(n)
	rep.Runs = append(rep.Runs, *imp)

	say("custos seed of %d customers", n)
	seedDir := filepath.Join(dir, "seed")
	out, use, wall, err := bulkRun(ctx, progress, stores.env("seed"), exe, bulkQuiet(progress, "seed", "-data", seedDir, "-subjects", strconv.Itoa(n),
		"-records", "0", "-seed", strconv.FormatUint(seedV, 10), "-no-plans")...)
	if err != nil {
		return nil, err
	}
	sd := &benchBulkRun{Name: "seed", WallSeconds: wall.Seconds(), CPUSeconds: use.cpu.Seconds(), PeakRSSBytes: use.maxRSS}
	m := bulkSeedRE.FindStringSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("bench: custos seed did not say how many customers it stored:\n%s", out)
	}
	sd.Stored, _ = strconv.Atoi(m[1])
	sd.judge(n)
	rep.Runs = append(rep.Runs, *sd)
	return rep, nil
}

// bulkImport makes a fresh node in dataDir (its store named by env, or
// SQLite there), serves it, imports the CSV file into it with custos
// import, and stops it.
func bulkImport(ctx context.Context, exe, dataDir string, env []string, csvPath string, say func(string, ...any), progress io.Writer) (*benchBulkRun, error) {
	out, _, _, err := bulkRun(ctx, nil, env, exe, "init", "-data", dataDir)
	if err != nil {
		return nil, err
	}
	m := bulkAdminKeyRE.FindStringSubmatch(out)
	if m == nil {
		return nil, errors.New("bench: custos init printed no admin key")
	}
	token := m[1]

	logFile, err := os.OpenFile(filepath.Join(dataDir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer logFile.Close()
	srv := exec.Command(exe, "serve", "-data", dataDir, "-no-plans", "-addr", "127.0.0.1:0")
	srv.Env = env
	srv.Stderr = logFile
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting custos serve: %w", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Process.Kill()
			srv.Wait()
		}
	}()
	url, err := bulkListening(ctx, stdout, logFile)
	if err != nil {
		return nil, err
	}

	say("custos import of %s into a node on %s", filepath.Base(csvPath), url)
	out, client, wall, err := bulkRun(ctx, progress, bulkEnv(), exe, bulkQuiet(progress, "import", "-server", url, "-token", token,
		"-purpose", bulkPurposes, "-source", "custos bench -bulk", csvPath)...)
	if err != nil {
		return nil, err
	}
	r := &benchBulkRun{Name: "import", WallSeconds: wall.Seconds(), ClientCPUSeconds: client.cpu.Seconds()}
	if m := bulkImportRE.FindStringSubmatch(out); m != nil {
		r.Stored, _ = strconv.Atoi(m[1])
	} else {
		return nil, fmt.Errorf("bench: custos import did not say how many customers it stored:\n%s", out)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		return nil, fmt.Errorf("bench: stopping custos serve: %w", err)
	}
	err = srv.Wait()
	stopped = true
	if err != nil {
		return nil, fmt.Errorf("bench: custos serve: %w; the end of its log:\n%s", err, bulkTail(logFile.Name()))
	}
	use := bulkUse(srv.ProcessState)
	r.CPUSeconds, r.PeakRSSBytes = use.cpu.Seconds(), use.maxRSS
	return r, nil
}

// bulkListening reads serve's standard output until it says where it
// listens, and then discards the rest in the background.
func bulkListening(ctx context.Context, stdout io.Reader, logFile *os.File) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if m := listeningLineRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case url, ok := <-found:
		if !ok {
			return "", fmt.Errorf("bench: custos serve stopped before it listened; the end of its log:\n%s", bulkTail(logFile.Name()))
		}
		return url, nil
	case <-time.After(time.Minute):
		return "", fmt.Errorf("bench: custos serve did not listen within a minute; the end of its log:\n%s", bulkTail(logFile.Name()))
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// listeningLineRE is serve's line naming its address (serve.go).
var listeningLineRE = regexp.MustCompile(`custos listening on (https?://\S+) \(data `)

// bulkRun runs exe with args and the environment env to its end, and
// returns its standard output, its rusage and its wall time. Its standard
// error (a load's progress bar) goes to progress as well, unless that is
// nil. A non-zero exit is an error quoting the end of both.
func bulkRun(ctx context.Context, progress io.Writer, env []string, exe string, args ...string) (string, benchUse, time.Duration, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if progress != nil {
		cmd.Stderr = io.MultiWriter(&stderr, progress)
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return stdout.String(), benchUse{}, wall, fmt.Errorf("bench: custos %s: %w\n%s%s", args[0], err, bulkTailOf(stdout.Bytes()), bulkTailOf(stderr.Bytes()))
	}
	return stdout.String(), bulkUse(cmd.ProcessState), wall, nil
}

// bulkTailOf is the last 2 KiB of a child's output, for an error: the
// temporary directory, and any file in it, is gone when the error is read.
func bulkTailOf(b []byte) []byte { return b[max(0, len(b)-2048):] }

// bulkTail is the end of the file at path (serve's log).
func bulkTail(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return []byte(err.Error())
	}
	return bulkTailOf(b)
}

// bulkQuiet is a load's arguments, with -quiet after the command when
// there is nowhere to show its progress. The last argument stays last (a
// file).
func bulkQuiet(progress io.Writer, args ...string) []string {
	if progress != nil {
		return args
	}
	return slices.Concat(args[:1], []string{"-quiet"}, args[1:])
}

// bulkUse is a finished child's CPU time and peak RSS.
func bulkUse(ps *os.ProcessState) benchUse {
	u := benchUse{cpu: ps.UserTime() + ps.SystemTime()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.maxRSS = benchMaxRSS(ru)
	}
	return u
}

// bulkEnv is this process's environment without CUSTOS_ variables, so
// that the loads run on the defaults: an operator's CUSTOS_STORE or
// CUSTOS_DATA must not send synthetic customers into a real vault. Only
// an explicit -store does (bulkStores.env).
func bulkEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUSTOS_") {
			env = append(env, kv)
		}
	}
	return env
}

// bulkStores is where -bulk's loads keep their customers: a fresh SQLite
// store in each load's data directory (base empty), or a schema of each
// load's own in the PostgreSQL database that base names.
type bulkStores struct {
	base    *url.URL          // the -store URL, or nil
	schemas map[string]string // load ("import", "seed") → schema
}

func (s bulkStores) kind() string {
	if s.base == nil {
		return "sqlite"
	}
	return "postgres"
}

// env is the environment of load's commands: bulkEnv, and for
// PostgreSQL the load's schema as CUSTOS_STORE (in the environment
// rather than the arguments, where any user's ps would show a password
// in the URL) with its migrations applied at start.
func (s bulkStores) env(load string) []string {
	env := bulkEnv()
	if s.base == nil {
		return env
	}
	u := *s.base
	q := u.Query()
	q.Set("search_path", s.schemas[load])
	u.RawQuery = q.Encode()
	return append(env, "CUSTOS_STORE="+u.String(), "CUSTOS_MIGRATE=1")
}

// bulkPostgres makes the loads' schemas in the database base names, and
// returns them with the function to call at the end, which drops them
// unless keep.
func bulkPostgres(ctx context.Context, base string) (bulkStores, func(ctx context.Context, keep bool) error, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return bulkStores{}, nil, &exitError{code: 2, err: errors.New("bench: -bulk -store takes a postgres:// URL (the loads then use two schemas made for them in its database); without -store they use fresh SQLite stores")}
	}
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return bulkStores{}, nil, fmt.Errorf("bench: connecting to PostgreSQL at %s (-store): %w", redactURL(base), err)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		conn.Close(ctx)
		return bulkStores{}, nil, err
	}
	stem := fmt.Sprintf("custos_bulk_%s_%s", time.Now().UTC().Format("20060102_150405"), hex.EncodeToString(b))
	s := bulkStores{base: u, schemas: map[string]string{"import": stem + "_import", "seed": stem + "_seed"}}
	done := func(ctx context.Context, keep bool) error {
		var errs []error
		if !keep {
			for _, schema := range s.schemas {
				if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
					errs = append(errs, fmt.Errorf("bench: dropping schema %s: %w", schema, err))
				}
			}
		}
		return errors.Join(append(errs, conn.Close(ctx))...)
	}
	for _, load := range []string{"import", "seed"} {
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+s.schemas[load]); err != nil {
			err = fmt.Errorf("bench: creating schema %s for the %s (-store's role needs CREATE on its database): %w", s.schemas[load], load, err)
			return bulkStores{}, nil, errors.Join(err, done(ctx, false))
		}
	}
	return s, done, nil
}

func bulkWriteCSV(path string, n int, seedV uint64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := seed.WriteCSV(f, n, seedV); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchBulkWrite prints the report as a table with the target's verdicts
// and writes it as JSON to jsonPath if given.
func benchBulkWrite(rep *benchBulkReport, w io.Writer, jsonPath string) error {
	fmt.Fprintf(w, "custos bench -bulk: %d customers (seed %d) into %s; %d CPU (%s); the CSV file took %.1fs to write\n",
		rep.Customers, rep.Seed, bulkStoreName(rep.Store), rep.NumCPU, cmp.Or(rep.CPUModel, "unknown CPU"), rep.CSVSeconds)
	fmt.Fprintf(w, "  %-7s %10s %10s %9s %14s %11s\n", "load", "stored", "wall", "CPU s", "client CPU s", "peak MiB")
	for _, r := range rep.Runs {
		client := "—"
		if r.ClientCPUSeconds > 0 {
			client = fmt.Sprintf("%.1f", r.ClientCPUSeconds)
		}
		fmt.Fprintf(w, "  %-7s %10d %10s %9.1f %14s %11.0f\n", r.Name, r.Stored, bulkClock(r.WallSeconds), r.CPUSeconds, client,
			float64(r.PeakRSSBytes)/(1<<20))
	}
	if rep.Store == "postgres" {
		fmt.Fprintln(w, "  (CPU and peak memory are custos's: custos serve for the import, custos seed for the seed; PostgreSQL's own processes are not counted)")
	} else {
		fmt.Fprintln(w, "  (CPU and peak memory are those of the process that holds the store: custos serve for the import, custos seed for the seed)")
	}
	fmt.Fprintln(w, "targets (issue 7):")
	for _, r := range rep.Runs {
		verdict := "missed"
		switch {
		case rep.Customers != bulkTargetCustomers:
			verdict = "—     "
		case r.Met:
			verdict = "met   "
		}
		fmt.Fprintf(w, "  %s  custos %s of %d customers in under 5 minutes with under %d MB of peak memory: %s, %.0f MB",
			verdict, r.Name, bulkTargetCustomers, bulkTargetRSS/1_000_000, bulkClock(r.WallSeconds), float64(r.PeakRSSBytes)/1e6)
		if r.Stored != rep.Customers {
			fmt.Fprintf(w, "; %d of %d stored", r.Stored, rep.Customers)
		}
		fmt.Fprintln(w)
	}
	if rep.Customers != bulkTargetCustomers {
		fmt.Fprintf(w, "  (this run loaded %d customers, not the target's %d, so it judges nothing)\n", rep.Customers, bulkTargetCustomers)
	}
	if jsonPath == "" {
		return nil
	}
	return benchWriteJSON(jsonPath, rep)
}

// bulkStoreName says where a report's loads went; reports made before
// -bulk took -store have no store, and were SQLite.
func bulkStoreName(store string) string {
	if store == "postgres" {
		return "PostgreSQL (a schema for each load)"
	}
	return "SQLite (a fresh store for each load)"
}

// bulkClock writes seconds as m:ss.s.
func bulkClock(s float64) string {
	m := int(s) / 60
	return fmt.Sprintf("%d:%04.1f", m, s-float64(60*m))
}

// benchBulkCmd is custos bench -bulk N: it checks the flags, runs the
// loads in a temporary directory (removed afterwards unless keep) and
// writes the report.
func benchBulkCmd(ctx context.Context, explicit map[string]bool, n int, seedV uint64, store string, keep, quiet bool, jsonPath string, stdout, stderr io.Writer) error {
	if err := benchOnly(explicit, "bulk", "runs its own loads", "seed", "store", "keep", "quiet", "json"); err != nil {
		return err
	}
	if n < 1 {
		return &exitError{code: 2, err: errors.New("bench: -bulk must be ≥ 1 (customers to load; the target names 1000000)")}
	}
	var stores bulkStores
	if explicit["store"] {
		s, done, err := bulkPostgres(ctx, store)
		if err != nil {
			return err
		}
		stores = s
		defer func() {
			if keep {
				fmt.Fprintf(stderr, "bench: PostgreSQL schemas kept: %s and %s\n", s.schemas["import"], s.schemas["seed"])
			}
			// Dropped after an interrupt too: they hold synthetic customers.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := done(ctx, keep); err != nil {
				fmt.Fprintf(stderr, "%v\n", err)
			}
		}()
	}
	if seedV == 0 {
		seedV = uint64(time.Now().UnixNano())
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: finding this binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "custos-bench-bulk-*")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer func() {
		if keep {
			fmt.Fprintf(stderr, "bench: data kept in %s\n", dir)
		} else if err := os.RemoveAll(dir); err != nil {
			// It holds master keys and synthetic customers: say so.
			fmt.Fprintf(stderr, "bench: could not remove %s: %v\n", dir, err)
		}
	}()
	say := func(format string, a ...any) {
		if !quiet {
			fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		}
	}
	var progress io.Writer
	if !quiet {
		progress = stderr
	}
	rep, err := benchBulk(ctx, exe, n, seedV, dir, stores, say, progress)
	if err != nil {
		return err
	}
	return benchBulkWrite(rep, stdout, jsonPath)
}
