package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"custos"
	"custos/core"
	custoshttp "custos/http"
	"custos/postgres"
	"custos/seed"
	"custos/sqlite"
)

// The load generator is a closed loop: each of c workers sends one request,
// waits for the whole answer, and sends the next, for a fixed time per step.
// It runs in the same process as the server it measures and talks to it over
// loopback TCP with a plain net/http client (keep-alive, one idle connection
// per worker, raw requests built from pre-encoded bodies) rather than
// custoshttp.Client, whose per-call JSON encoding, default transport (two idle
// connections per host) and unread error bodies would be measured as server
// cost. The same client code drives a bare net/http handler answering a
// fixed JSON body on a second loopback port: that is the ceiling every
// workload is reported against.

// Bench defaults.
const (
	benchDefaultSubjects = 10000
	// benchMaxSamples bounds the latency samples kept per step; beyond it
	// each worker keeps a uniform reservoir of its share.
	benchMaxSamples = 2_000_000
	// benchImportBatch is the rows per request of the import workload.
	benchImportBatch = 500
	// benchReadBatch is the customers per request of the read-batch
	// workload: a page of a customer-service list.
	benchReadBatch = 20
	// benchPoolMax bounds the ids kept for the erase workload.
	benchPoolMax = 1_000_000
)

// benchWorkloads lists the workloads in the order they run.
var benchWorkloads = []string{"create", "read", "lookup", "read-batch", "update", "erase", "records", "import", "mixed"}

// benchCreateFields are the fields a created subject carries, and
// benchCreatePurposes the purposes they are collected for.
var (
	benchCreateFields   = []string{"name", "mobile", "email", "id_number", "address", "birth_date", "gender", "member_no"}
	benchCreatePurposes = "account,fulfilment,legal-obligation"
	benchProvenance     = custos.Provenance{Collector: "bench", Channel: "bench", Source: "synthetic"}
)

// benchReport is the -json document.
type benchReport struct {
	Version    string    `json:"version"`
	StartedAt  time.Time `json:"started_at"`
	GoVersion  string    `json:"go_version"`
	GOOS       string    `json:"goos"`
	GOARCH     string    `json:"goarch"`
	NumCPU     int       `json:"num_cpu"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	// Procs is the GOMAXPROCS custos's steps ran with (-procs) when it
	// was not the process's: the seed, the priming and the ceiling's
	// steps ran with GOMAXPROCS.
	Procs    int    `json:"custos_gomaxprocs,omitempty"`
	CPUModel string `json:"cpu_model,omitempty"`
	LoadAvg  string `json:"loadavg_at_start,omitempty"`
	Store    string `json:"store"`
	Client   string `json:"client"`
	Subjects int    `json:"subjects"`
	// StoreSubjects is how many customers a -reuse run's store held, of
	// which it read Subjects (the scale target's store size, -scale).
	StoreSubjects int    `json:"store_subjects,omitempty"`
	Seed          uint64 `json:"seed"`
	// DrawSeed seeded the workers' draws of customers when -draw-seed
	// gave one other than Seed; 0: Seed did.
	DrawSeed    uint64  `json:"draw_seed,omitempty"`
	SeedSeconds float64 `json:"seed_seconds"`
	// AnalyzeSeconds is how long the PostgreSQL store's ANALYZE after the
	// seed took (included in SeedSeconds); 0 on SQLite. Runs before the
	// fortieth session measured PostgreSQL without planner statistics.
	AnalyzeSeconds float64 `json:"analyze_seconds,omitempty"`
	// ReadAuditDurability is "committed" when the node answered reads
	// once their audit event was committed rather than on disk
	// (read_audit_durability); "": the default, on disk.
	ReadAuditDurability string `json:"read_audit_durability,omitempty"`
	// GC is the garbage collector's setting when not Go's default:
	// "headroom N MiB …" (--gc-headroom-mib, or its automatic default
	// since the forty-ninth session) or "GOGC=V" from the environment;
	// "": Go's default (--gc-headroom-mib -1, and every run before the
	// forty-eighth session). It is the process's, so the ceiling ran
	// under it too.
	GC string `json:"gc,omitempty"`
	// Zipf is the exponent of the Zipf law by which reads and lookups
	// drew their customer; 0: uniformly.
	Zipf float64 `json:"zipf,omitempty"`
	// PrimeSeconds is how long -prime took to read every customer once
	// before the steps; 0 without -prime.
	PrimeSeconds float64 `json:"prime_seconds,omitempty"`
	// Warm is what -warm's warm-up of the read cache did: how far it had
	// got when the first custos step began, and in all.
	Warm          *benchWarm    `json:"warm,omitempty"`
	DurationSec   float64       `json:"duration_seconds"`
	WarmupSec     float64       `json:"warmup_seconds"`
	Concurrency   []int         `json:"concurrency"`
	Workloads     []string      `json:"workloads"`
	CeilingBytes  int           `json:"ceiling_body_bytes"`
	RSSPerStep    bool          `json:"peak_rss_per_step"` // false: peak RSS is since process start
	Results       []benchResult `json:"results"`
	TotalDuration float64       `json:"total_seconds"`
	// Targets are issue 7's targets as this run measured them, and
	// HostSpeed this run's ceiling at c=16 over the reference machine's
	// (benchtargets.go).
	Targets   []benchVerdict `json:"targets,omitempty"`
	HostSpeed float64        `json:"ceiling_vs_reference,omitempty"`
	// Rounds is how many runs a -merge report is the median of, and
	// MergedFrom when each of them started (benchmerge.go).
	Rounds     int      `json:"rounds,omitempty"`
	MergedFrom []string `json:"merged_from,omitempty"`
}

// benchResult is one workload at one concurrency.
type benchResult struct {
	Workload    string `json:"workload"`
	Concurrency int    `json:"concurrency"`
	// Procs is the GOMAXPROCS the step ran with (-procs).
	Procs      int     `json:"gomaxprocs,omitempty"`
	Requests   int64   `json:"requests"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput"` // requests per second
	// Latencies of the measured requests, in milliseconds.
	P50ms  float64 `json:"p50_ms"`
	P95ms  float64 `json:"p95_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	Errors int64   `json:"errors"`
	// ErrorCodes are the first distinct codes seen (problem "code", or
	// "http_NNN", "transport", "row_<status>"), in order of first sight.
	ErrorCodes []benchCode `json:"error_codes,omitempty"`
	// LateErrors counts failures of requests that completed after the
	// window (not in Errors, nor in the error codes); LateErrorCodes are
	// their codes, as ErrorCodes.
	LateErrors     int64       `json:"errors_after_window"`
	LateErrorCodes []benchCode `json:"error_codes_after_window,omitempty"`
	// CPU seconds (user+system) used by the whole process — server and load
	// generator — during the measured window.
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUPerRequestUS float64 `json:"cpu_us_per_request"`
	// WaitsPerRequest is the process's voluntary context switches in the
	// window over its requests: how often a thread of it went to sleep
	// (on a futex, in epoll, in I/O) and had to be woken; a request's
	// wake-ups cost CPU that its profile shows in other calls.
	// PreemptionsPerRequest is the involuntary ones: a thread taken off
	// its CPU for another. MachineIdle is the share of the machine's CPU
	// time, over all its CPUs, spent idle or waiting for I/O in the
	// window (/proc/stat): near 0 when the step kept every CPU busy.
	// All omitted where the system does not say (MachineIdle is nil
	// without /proc/stat).
	WaitsPerRequest       float64  `json:"waits_per_request,omitempty"`
	PreemptionsPerRequest float64  `json:"preemptions_per_request,omitempty"`
	MachineIdle           *float64 `json:"machine_idle,omitempty"`
	// GCCycles counts the garbage collections that ended in the window,
	// GCMarkMsPerCycle their marking's CPU (background and assists, in
	// ms a cycle, the runtime's estimate), and GCLiveBytes the heap the
	// last of them left: a collection's marking runs beside the requests
	// for as long as it takes, and requests that meet it make a step's
	// p99 (fifty-ninth session). The whole process's: server and load
	// generator.
	GCCycles         uint64  `json:"gc_cycles"`
	GCMarkMsPerCycle float64 `json:"gc_mark_cpu_ms_per_cycle,omitempty"`
	GCLiveBytes      uint64  `json:"gc_live_heap_bytes,omitempty"`
	PeakRSSBytes     int64   `json:"peak_rss_bytes"`
	CeilingRPS       float64 `json:"ceiling_throughput"`
	Ratio            float64 `json:"ratio_to_ceiling"`
	RowsPerSec       float64 `json:"rows_per_sec,omitempty"` // import: rows stored per second; read-batch: customers read per second
	// RowsPerSecDrained counts also the rows of the requests that were in
	// flight when the window closed, over the window and the drain
	// (import; set when some completed late). Large batches at high
	// concurrency take longer than a short window, and only this rate
	// then says how fast rows were stored.
	RowsPerSecDrained float64 `json:"rows_per_sec_with_drain,omitempty"`
	// CacheHitRate is the share of subject rows reads found in the
	// SQLite read cache, or of the reads by id and lookups the PostgreSQL
	// read cache answered, during the window (omitted when no read
	// looked). CacheStale counts the PostgreSQL reads answered from it
	// that its check found stale, and that ran again from the tables;
	// CacheKeysFilled the blind-index keys a PostgreSQL node loaded for
	// customers its reads by id put in the cache (postgres/keyfill.go).
	CacheHitRate    float64 `json:"read_cache_hit_rate,omitempty"`
	CacheStale      int64   `json:"read_cache_stale,omitempty"`
	CacheKeysFilled int64   `json:"read_cache_keys_filled,omitempty"`
	// LateJoins counts the groups of read audits a PostgreSQL node held
	// back while its other group's end was on its way, and LateJoined
	// the requests they took meanwhile (postgres/latejoin.go).
	LateJoins  int64 `json:"late_joins,omitempty"`
	LateJoined int64 `json:"late_joined,omitempty"`
	// KeptRate is the share of the SQLite reads of one customer that ran
	// SQL (Glance) answered on a snapshot kept from an earlier read
	// (sqlite/kept.go), and KeptStale the share of those that ran again
	// in a transaction of their own (omitted when none ran).
	KeptRate  float64 `json:"kept_snapshot_rate,omitempty"`
	KeptStale float64 `json:"kept_snapshot_stale,omitempty"`
	// WriterBusy is the share of the window the SQLite writer spent on
	// commit groups, and GroupSize the mean write requests per group
	// (omitted on PostgreSQL, or when nothing was written).
	// PagesPerWrite is the mean database pages the writer wrote to the
	// WAL per write request: a commit's I/O.
	// SyncsPerGroup is the mean fsyncs of the WAL per commit group:
	// under 1 when one sync covered several groups (sqlite/durable.go).
	WriterBusy    float64 `json:"writer_busy,omitempty"`
	GroupSize     float64 `json:"group_size,omitempty"`
	PagesPerWrite float64 `json:"pages_per_write,omitempty"`
	SyncsPerGroup float64 `json:"syncs_per_group,omitempty"`
	// FilingsPerThousand is how many filings of the audit log's index
	// the SQLite store made per thousand write requests, and FilingMs
	// the mean milliseconds each took, beside the writer
	// (sqlite/auditindex.go; until the fifty-eighth session the writer
	// filed, and every write waited that long).
	FilingsPerThousand float64 `json:"audit_filings_per_1000_writes,omitempty"`
	FilingMs           float64 `json:"audit_filing_ms,omitempty"`
	// EarlyShare is the share of commit groups answered before their
	// sync, on PostgreSQL before their commit flush
	// (read_audit_durability committed).
	EarlyShare float64 `json:"early_share,omitempty"`
	// DeferredStatements is how many statements PostgreSQL commit groups
	// sent deferred in the window (a group of creates' inserts, in one
	// round trip), and GroupsUndeferred how many groups ran again without
	// deferring because one of those failed (omitted on SQLite).
	DeferredStatements int64 `json:"deferred_statements,omitempty"`
	GroupsUndeferred   int64 `json:"groups_undeferred,omitempty"`
	// GroupEnds is how many PostgreSQL commit groups ended in the window,
	// OneTripEnds how many ends were sent in one round trip with their
	// audit events chained on the server, and OneTripFallbacks how many of
	// those found a checkpoint due and ended the usual way (fortieth
	// session). A group run again (a cached read found stale, a duplicate
	// among deferred creates) ends again, so OneTripEnds can exceed
	// GroupEnds.
	GroupEnds        int64 `json:"group_ends,omitempty"`
	OneTripEnds      int64 `json:"one_trip_ends,omitempty"`
	OneTripFallbacks int64 `json:"one_trip_fallbacks,omitempty"`
	// ReadsPerStatement is, on PostgreSQL, how many reads by id or
	// lookup key went in one statement on average (forty-fifth session:
	// concurrent reads share one).
	ReadsPerStatement float64 `json:"reads_per_statement,omitempty"`
	Samples           int     `json:"latency_samples"`
	// DrainSeconds is how long the requests in flight at the end of the
	// window took to finish (they are not counted).
	DrainSeconds float64 `json:"drain_seconds"`
	Note         string  `json:"note,omitempty"`
	// pgGroups says that GroupSize counts PostgreSQL's commit groups.
	pgGroups bool
}

// benchCode counts one error code.
type benchCode struct {
	Code  string `json:"code"`
	Count int64  `json:"count"`
}

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, cf := newFlags("bench", stderr)
	subjects := fs.Int("subjects", benchDefaultSubjects, "synthetic customers to seed before the load")
	concFlag := fs.String("c", "1,16,64", "concurrency levels (closed-loop workers), comma-separated")
	duration := fs.Duration("duration", 10*time.Second, "measured time per workload and concurrency")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before each step (at most a fifth of -duration)")
	wlFlag := fs.String("workloads", "all", "comma-separated: "+strings.Join(benchWorkloads, ",")+" (or all)")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	svgOut := fs.String("svg", "", "also draw the results as an SVG chart in this file (share of the ceiling, targets marked)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the custos workload steps to this file")
	traceOut := fs.String("trace", "", "write an execution trace of the custos workload steps to this file (go tool trace; -pprof=sched shows where goroutines waited for a CPU)")
	memProfile := fs.String("memprofile", "", "write an allocation profile (go tool pprof -sample_index=alloc_space) at the end")
	seedV := fs.Uint64("seed", 0, "random seed of the synthetic data (0: from the clock)")
	drawSeed := fs.Uint64("draw-seed", 0, "random seed of the workers' draws of customers (0: -seed); runs with one -seed and different -draw-seed read the same customers in different orders, so that one run's reads are not the next one's first (-reuse, -warm)")
	keep := fs.Bool("keep", false, "keep the temporary data directory")
	zipf := fs.Float64("zipf", 0, "reads and lookups draw their customer by a Zipf law of this exponent (> 1; the first customers drawn most often, as a shop's active customers are) instead of uniformly (0)")
	prime := fs.Bool("prime", false, "before the steps, read each customer the read workload draws from once, unmeasured, so that the steps measure a node that has served them before (its read cache as full as -read-cache allows) rather than its first seconds")
	warmFlag := fs.Bool("warm", false, "with -data: warm the read cache in the background as serve does at its start, a SQLite store's from the list the last -warm run (or custos serve) left beside it, and leave the list at the end; with -store postgres://… from the audit log's latest reads and lookups (with -reuse, the last run's)")
	reuse := fs.Bool("reuse", false, "with -data (and -store postgres://… for a PostgreSQL store, whose keys -data holds): seed nothing, and read -subjects of the customers already there, drawn at random (read workload only; for the scale target, and -warm)")
	serverLog := fs.String("server-log", "", "write the server's log here (default: formatted and discarded)")
	quiet := fs.Bool("quiet", false, "no progress output")
	rounds := fs.Int("rounds", 1, "run the whole benchmark this many times, each on a fresh temporary store with the same -seed, and report the medians, step by step (as -merge)")
	merge := fs.String("merge", "", "run nothing: read these JSON reports of earlier runs (comma-separated) and report their medians, step by step, with -json and -svg as for a run")
	compare := fs.String("compare", "", "run nothing: read the JSON reports of runs of a change (comma-separated), each paired with the run of -base at its place, and report each step's median A/B ratio, range, wins and a sign test; with -json as well")
	base := fs.String("base", "", "with -compare: the JSON reports of the base build's runs, one per -compare report, in the same order")
	scale := fs.String("scale", "", "run nothing: read the JSON reports of -reuse runs on a large store (comma-separated), each paired with the run on a small store of -scale-small at its place, and report the pairs' ratios of the read's p50 at each concurrency, with issue 7's scale target judged for 10,000,000 customers against 10,000; with -json as well")
	scaleSmall := fs.String("scale-small", "", "with -scale: the JSON reports of the -reuse runs on the small store, one per -scale report, in the same order")
	procs := fs.Int("procs", 0, "run custos's steps with this many Go processors (GOMAXPROCS) and everything else, the ceiling's steps included, with the process's; 0: the process's. On a host shared with PostgreSQL, -procs with one fewer than its CPUs measures what leaving the database's backends a CPU does to your traffic (docs/deploy.md)")
	bulk := fs.Int("bulk", 0, "run the bulk-load target instead of the workloads: custos import of this many generated customers into a fresh node, then custos seed of as many into another fresh store, each a process of this binary, judged by wall time and the store's process's peak memory (issue 7: 1000000 in under 5 minutes and 500 MB); SQLite, or with -store postgres://…/DB two schemas made for the loads in DB and dropped afterwards; with -seed, -store, -keep, -quiet and -json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: custos bench [flags]\n\nStarts custos in this process on a loopback port, seeds synthetic customers, and\ndrives closed-loop load per workload and concurrency. Without -data it uses a\nfresh SQLite store in a temporary directory, removed afterwards.")
		fs.PrintDefaults()
	}
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if *compare != "" || *base != "" {
		if err := benchOnly(explicit, "compare", "runs nothing", "base", "json"); err != nil {
			return err
		}
		if *compare == "" || *base == "" {
			return &exitError{code: 2, err: fmt.Errorf("bench: -compare and -base go together: the change's reports and the base's")}
		}
		c, err := benchCompare(strings.Split(*compare, ","), strings.Split(*base, ","))
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		return benchCompareWrite(c, stdout, *jsonOut)
	}
	if *scale != "" || *scaleSmall != "" {
		if err := benchOnly(explicit, "scale", "runs nothing", "scale-small", "json"); err != nil {
			return err
		}
		if *scale == "" || *scaleSmall == "" {
			return &exitError{code: 2, err: fmt.Errorf("bench: -scale and -scale-small go together: the large store's reports and the small store's")}
		}
		sc, err := benchScale(strings.Split(*scale, ","), strings.Split(*scaleSmall, ","))
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		return benchScaleWrite(sc, stdout, *jsonOut)
	}
	if explicit["bulk"] {
		return benchBulkCmd(ctx, explicit, *bulk, *seedV, cfg.Store, *keep, *quiet, *jsonOut, stdout, stderr)
	}
	if *merge != "" {
		if err := benchOnly(explicit, "merge", "runs nothing", "json", "svg"); err != nil {
			return err
		}
		rep, err := benchMerge(strings.Split(*merge, ","))
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		return benchWrite(rep, stdout, *jsonOut, *svgOut)
	}

	var problems []string
	conc, err := benchParseConc(*concFlag)
	if err != nil {
		problems = append(problems, err.Error())
	}
	workloads, err := benchParseWorkloads(*wlFlag)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if *subjects < 1 {
		problems = append(problems, "-subjects must be ≥ 1")
	}
	if *duration <= 0 {
		problems = append(problems, "-duration must be positive")
	}
	if *warmup < 0 {
		problems = append(problems, "-warmup must not be negative")
	}
	if *zipf != 0 && !(*zipf > 1 && *zipf <= 10) {
		problems = append(problems, "-zipf must be 0 (uniform) or an exponent above 1 and at most 10")
	}
	if *reuse && !explicit["data"] {
		problems = append(problems, "-reuse needs -data: the store's directory (with -store postgres://…, the one holding its keys)")
	}
	if *warmFlag && !explicit["data"] {
		problems = append(problems, "-warm needs -data: the store's directory (with -store postgres://…, the one holding its keys)")
	}
	if *reuse && !slices.Equal(workloads, []string{"read"}) {
		problems = append(problems, "-reuse runs the read workload only (-workloads read)")
	}
	if *procs < 0 {
		problems = append(problems, "-procs must be 0 (the process's GOMAXPROCS) or more")
	}
	if *rounds < 1 || *rounds > maxBenchRounds {
		problems = append(problems, fmt.Sprintf("-rounds must be 1–%d", maxBenchRounds))
	}
	if *rounds > 1 {
		for _, name := range []string{"data", "store", "reuse", "keep", "cpuprofile", "trace", "memprofile"} {
			if explicit[name] {
				problems = append(problems, "-rounds runs each round on a fresh temporary store and records no profile: not with -"+name)
			}
		}
	}
	if len(problems) > 0 {
		return &exitError{code: 2, err: errors.New("bench: " + strings.Join(problems, "; "))}
	}
	*warmup = min(*warmup, *duration/5)
	if *seedV == 0 {
		*seedV = uint64(time.Now().UnixNano())
	}
	if *rounds > 1 {
		return benchRounds(ctx, fs, *rounds, *seedV, *jsonOut, *svgOut, stdout, stderr, getenv)
	}
	// say is called from goroutines at once (-prime's workers report
	// their progress), and stderr may be any writer: one line at a time.
	var sayMu sync.Mutex
	say := func(format string, a ...any) {
		if !*quiet {
			sayMu.Lock()
			defer sayMu.Unlock()
			fmt.Fprintf(stderr, "bench: "+format+"\n", a...)
		}
	}

	// The data directory: a fresh temporary one unless -data was given
	// (CUSTOS_DATA is deliberately ignored: a benchmark must not fill a
	// real vault with synthetic customers by accident).
	if !explicit["data"] {
		dir, err := os.MkdirTemp("", "custos-bench-*")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		cfg.Data = dir
		defer func() {
			if *keep {
				fmt.Fprintf(stderr, "bench: data kept in %s\n", dir)
			} else if err := os.RemoveAll(dir); err != nil {
				// It holds master keys and synthetic customers: say so.
				fmt.Fprintf(stderr, "bench: could not remove %s: %v\n", dir, err)
			}
		}()
	}
	logOut := io.Discard
	if *serverLog != "" {
		f, err := os.OpenFile(*serverLog, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer f.Close()
		logOut = f
	}
	logger := newLogger(cfg, logOut)

	rep := &benchReport{Version: version, StartedAt: time.Now().UTC().Truncate(time.Second), GoVersion: runtime.Version(),
		GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		CPUModel: benchCPUModel(), LoadAvg: benchLoadAvg(), Subjects: *subjects, Seed: *seedV,
		DurationSec: duration.Seconds(), WarmupSec: warmup.Seconds(), Concurrency: conc, Workloads: workloads, Zipf: *zipf,
		Client: "net/http keep-alive client in the same process (raw requests, bodies encoded before timing)"}
	rep.Store = "sqlite:" + cfg.DBPath()
	if cfg.ReadAuditCommitted() {
		rep.ReadAuditDurability = cfg.ReadAuditDurability
	}
	if cfg.Store != "" && !strings.HasPrefix(cfg.Store, "sqlite:") {
		rep.Store = redactURL(cfg.Store)
	}
	if !explicit["data"] && cfg.Store == "" {
		rep.Store = "sqlite (fresh, temporary directory)"
	}
	began := time.Now()

	n, err := openNode(ctx, cfg, getenv, logger, true)
	if err != nil {
		return err
	}
	defer n.Close()
	// The node's collector setting, as serve's; the ceiling, in the
	// same process, runs under it too.
	gc, gcHow := startGC(cfg)
	defer gc.Stop()
	switch {
	case strings.HasPrefix(gcHow, "GOGC="):
		rep.GC = gcHow
	case gc != nil:
		rep.GC = "headroom " + gcHow
	}
	var warm *cacheWarmer
	if *warmFlag {
		warm = startCacheWarmer(ctx, nodeWarmStore(n), logger)
		defer func() { // before n.Close
			warm.stop()
			warm.save()
		}()
	}
	srv := custoshttp.NewServer(n.svc, logger)
	addr := "127.0.0.1:0"
	if explicit["addr"] {
		addr = cfg.Addr
	}
	if err := srv.Listen(addr); err != nil {
		return fmt.Errorf("bench: listen %s: %w", addr, err)
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve() }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("shutdown", "err", err)
		}
		<-srvErr
		if err := n.svc.Checkpoint(sctx); err != nil {
			logger.Warn("audit checkpoint failed", "err", err)
		}
	}()
	ceil, err := benchStartCeiling(stderr)
	if err != nil {
		return err
	}
	defer func() {
		if err := ceil.close(); err != nil {
			logger.Warn("ceiling server close", "err", err)
		}
	}()
	rep.CeilingBytes = len(benchCeilingBody)

	maxC := slices.Max(conc)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: maxC + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	env := &benchEnv{
		http:     &http.Client{Transport: tr, Timeout: custoshttp.ClientTimeout},
		base:     "http://" + srv.Addr(),
		ceiling:  "http://" + ceil.addr(),
		gen:      &benchGen{g: seed.New(rand.New(rand.NewPCG(*seedV, 0x62656e6368)))},
		erasable: &benchPool{},
		seed:     *seedV,
		draws:    cmp.Or(*drawSeed, *seedV),
		zipf:     *zipf,
	}
	if n.sqlite != nil {
		env.cache, env.writer, env.kept = n.sqlite.ReadCacheStats, n.sqlite.WriterStats, n.sqlite.KeptStats
	} else if n.pg != nil {
		env.groups = n.pg.GroupStats
	}
	if err := env.principals(ctx, n); err != nil {
		return fmt.Errorf("bench: principals: %w", err)
	}
	say("custos on %s (%s), ceiling on %s", srv.Addr(), rep.Store, ceil.addr())

	t0 := time.Now()
	if *reuse {
		stored, err := env.sampleSubjects(ctx, cfg, *subjects)
		if err != nil {
			return fmt.Errorf("bench: -reuse: %w", err)
		}
		rep.Subjects, rep.StoreSubjects = len(env.ids), stored
		say("reading %d of the %d customers in the store, drawn at random", len(env.ids), stored)
	} else if err := env.seedSubjects(ctx, n, *subjects, stderr, *quiet); err != nil {
		return fmt.Errorf("bench: seed: %w", err)
	}
	if n.pg != nil {
		// A store in use has planner statistics: autovacuum analyses a
		// table within about a minute of a load. The steps begin seconds
		// after the seed, so the bench analyses it now (postgres.DB.Analyze).
		ta := time.Now()
		if _, err := n.pg.Analyze(ctx); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		rep.AnalyzeSeconds = time.Since(ta).Seconds()
	}
	rep.SeedSeconds = time.Since(t0).Seconds()
	if env.draws != env.seed {
		rep.DrawSeed = env.draws
	}
	env.addrs = env.gen.addresses(1024)
	if err := env.checkMasking(ctx); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if *prime {
		t0 := time.Now()
		if err := env.prime(ctx, benchPrimeWorkers, say); err != nil {
			return fmt.Errorf("bench: -prime: %w", err)
		}
		rep.PrimeSeconds = max(time.Since(t0).Seconds(), 1e-3)
		say("primed: read each of the %d customers once in %.1f s", len(env.ids), rep.PrimeSeconds)
	}

	rep.RSSPerStep = benchResetPeakRSS()
	run := func(name string, c int, wl *benchWorkload, ceilRPS float64) (benchResult, error) {
		if rate := benchCreateRate[name]; rate > 0 {
			env.creates.fill(env.gen, min(int((*warmup+*duration).Seconds()*rate), benchMaxBodies))
		}
		late := env.creates.late.Load()
		res, err := benchStep(ctx, env, name, wl, c, *warmup, *duration, ceilRPS, rep.RSSPerStep)
		if err != nil {
			return res, err
		}
		if n := env.creates.late.Load() - late; n > 0 {
			res.Note = strings.TrimPrefix(res.Note+"; "+fmt.Sprintf("%d create bodies were made during the step: the pool made before it ran out", n), "; ")
		}
		rep.Results = append(rep.Results, res)
		extra := ""
		if res.RowsPerSec > 0 {
			extra = fmt.Sprintf(", %.0f %s/s", res.RowsPerSec, benchRowNoun(name))
		}
		say("%-8s c=%-4d %8.0f req/s%s  p99 %s  errors %d", name, c, res.Throughput, extra, benchMs(res.P99ms), res.Errors)
		return res, nil
	}
	ceilings := map[int]float64{}
	for _, c := range conc {
		res, err := run("ceiling", c, env.workload("ceiling"), 0)
		if err != nil {
			return err
		}
		ceilings[c] = res.Throughput
	}
	if warm != nil {
		rep.Warm = benchWarmAt(warm)
		say("read cache warm-up at the first custos step: %s", rep.Warm)
	}
	prof, err := startBenchRecording(*cpuProfile, "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile)
	if err != nil {
		return err
	}
	defer prof.finish() // on early return; finished and checked below otherwise
	traced, err := startBenchRecording(*traceOut, "trace", trace.Start, trace.Stop)
	if err != nil {
		return err
	}
	defer traced.finish()
	if *procs > 0 && *procs != rep.GOMAXPROCS {
		rep.Procs = *procs
		runtime.GOMAXPROCS(*procs)
		defer runtime.GOMAXPROCS(rep.GOMAXPROCS)
	}
	for _, name := range workloads {
		for _, c := range conc {
			wl := env.workload(name)
			if name == "erase" {
				if err := env.topUpErasable(ctx, n, c, *warmup+*duration, rep.Results); err != nil {
					return fmt.Errorf("bench: erase pool: %w", err)
				}
			}
			if _, err := run(name, c, wl, ceilings[c]); err != nil {
				return err
			}
		}
	}
	if err := errors.Join(traced.finish(), prof.finish()); err != nil {
		return err
	}
	if *memProfile != "" {
		if err := benchWriteAllocs(*memProfile); err != nil {
			return fmt.Errorf("bench: memory profile: %w", err)
		}
	}
	if warm != nil {
		rep.Warm.update(warm)
	}
	rep.TotalDuration = time.Since(began).Seconds()
	rep.Targets, rep.HostSpeed = benchVerdicts(rep), benchHostSpeed(rep)
	return benchWrite(rep, stdout, *jsonOut, *svgOut)
}

// benchWrite prints rep as a table and writes it as JSON and as an SVG
// chart to the files named, if any.
func benchWrite(rep *benchReport, stdout io.Writer, jsonOut, svgOut string) error {
	benchTable(stdout, rep)
	if jsonOut != "" {
		if err := benchWriteJSON(jsonOut, rep); err != nil {
			return err
		}
	}
	if svgOut != "" {
		var buf bytes.Buffer
		if err := benchSVG(&buf, rep); err != nil {
			return err
		}
		if err := os.WriteFile(svgOut, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// benchOnly refuses, naming it, any flag set besides the mode's own and
// allowed: -compare, -scale, -merge and -bulk each do one thing and
// would silently ignore the rest. what says what the mode does instead
// of a run.
func benchOnly(explicit map[string]bool, mode, what string, allowed ...string) error {
	for _, name := range slices.Sorted(maps.Keys(explicit)) {
		if name != mode && !slices.Contains(allowed, name) {
			list := "-" + strings.Join(allowed, ", -")
			if i := strings.LastIndex(list, ", "); i >= 0 {
				list = list[:i] + " and " + list[i+2:]
			}
			return &exitError{code: 2, err: fmt.Errorf("bench: -%s %s and takes only %s, not -%s", mode, what, list, name)}
		}
	}
	return nil
}

// benchWriteJSON writes v as indented JSON to path.
func benchWriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// benchRecording is a CPU profile or an execution trace of the workload
// steps being written to a file.
type benchRecording struct {
	f    *os.File
	stop func()
	what string
}

// startBenchRecording creates path and starts recording into it; nothing
// when path is empty.
func startBenchRecording(path, what string, start func(io.Writer) error, stop func()) (*benchRecording, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: %s: %w", what, err)
	}
	return &benchRecording{f: f, stop: stop, what: what}, nil
}

// finish stops the recording and closes its file; later calls do nothing.
func (r *benchRecording) finish() error {
	if r == nil || r.f == nil {
		return nil
	}
	r.stop()
	err := r.f.Close()
	r.f = nil
	if err != nil {
		return fmt.Errorf("bench: %s: %w", r.what, err)
	}
	return nil
}

func benchParseConc(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || v < 1 || v > 4096 {
			return nil, fmt.Errorf("-c %q: want positive integers up to 4096, comma-separated", s)
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

func benchParseWorkloads(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" || strings.TrimSpace(s) == "" {
		return slices.Clone(benchWorkloads), nil
	}
	want := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if !slices.Contains(benchWorkloads, part) {
			return nil, fmt.Errorf("-workloads: unknown workload %q (have %s)", part, strings.Join(benchWorkloads, ", "))
		}
		want[part] = true
	}
	var out []string
	for _, w := range benchWorkloads { // always in the canonical order
		if want[w] {
			out = append(out, w)
		}
	}
	return out, nil
}

// benchCeilingBody is what the bare handler answers: a fixed JSON document
// about the size of a masked subject (~300 bytes).
var benchCeilingBody = []byte(`{"id":"sub_0123456789abcdefghijklmnop","fields":{"name":"张*","gender":"female","birth_date":"1990-**-**",` +
	`"mobile":"138****5678","email":"z***@example.com","member_no":"M0123456789"},"created_at":"2026-01-01T00:00:00Z",` +
	`"updated_at":"2026-01-01T00:00:00Z","padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}` + "\n")

// benchCeiling is the bare net/http server measured as the ceiling.
type benchCeiling struct {
	ln  net.Listener
	srv *http.Server
}

func benchStartCeiling(stderr io.Writer) (*benchCeiling, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: ceiling listen: %w", err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(benchCeilingBody)))
		if _, err := w.Write(benchCeilingBody); err != nil {
			return // the client counts a short answer as an error
		}
	})
	// The same timeouts as custos's own server, so only the handler differs.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(stderr, "bench: ceiling server:", err)
		}
	}()
	return &benchCeiling{ln: ln, srv: srv}, nil
}

func (c *benchCeiling) addr() string { return c.ln.Addr().String() }

func (c *benchCeiling) close() error { return c.srv.Close() }

// benchGen serialises a seed.Generator, so every generated lookup value
// (mobile, e-mail, id number, member number) is unique across the run.
type benchGen struct {
	mu sync.Mutex
	g  *seed.Generator
}

// subject returns a new customer with the benchCreateFields only.
func (g *benchGen) subject() custos.NewSubject {
	g.mu.Lock()
	full := g.g.Subject()
	g.mu.Unlock()
	f := make(map[string]string, len(benchCreateFields))
	for _, name := range benchCreateFields {
		f[name] = full.Fields[name]
	}
	return custos.NewSubject{Fields: f, Provenance: benchProvenance}
}

// full returns a complete synthetic customer (for seeding).
func (g *benchGen) full() custos.NewSubject {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.g.Subject()
}

func (g *benchGen) addresses(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = g.full().Fields["address"]
	}
	return out
}

// benchCreateRate is, per workload that sends creates, the creates a
// second its pool of bodies is filled for before each step (benchBodies):
// above what any step has reached here (create c=256: 6,407/s; mixed
// sends one create in ten).
var benchCreateRate = map[string]float64{"create": 8000, "mixed": 2000}

// benchMaxBodies bounds the pool (about 330 bytes a body, so about 65
// MiB of the process's RSS): a create step longer than about 24 s at
// 8,000/s makes the rest of its bodies in the window, and says so.
const benchMaxBodies = 200_000

// benchBodies holds encoded create bodies, made before a step so that
// making a unique synthetic customer (about 20 µs of CPU: the generator
// checks every lookup value against the ones it made, under a lock) is
// not done by the load generator inside the measured window, beside the
// server, as reads and lookups pick a ready id or body. Bodies left over
// stay valid for the next step: none repeats a lookup value.
type benchBodies struct {
	mu   sync.Mutex
	list [][]byte
	late atomic.Int64 // bodies made on demand because the pool was empty
}

func (b *benchBodies) fill(g *benchGen, n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.list) < n {
		b.list = append(b.list, benchCreateBody(g))
	}
}

// pop returns a ready body, or makes one if none is left.
func (b *benchBodies) pop(g *benchGen) []byte {
	b.mu.Lock()
	if n := len(b.list); n > 0 {
		body := b.list[n-1]
		b.list[n-1] = nil
		b.list = b.list[:n-1]
		b.mu.Unlock()
		return body
	}
	b.mu.Unlock()
	b.late.Add(1)
	return benchCreateBody(g)
}

func benchCreateBody(g *benchGen) []byte {
	body, err := json.Marshal(g.subject())
	if err != nil {
		panic(err) // a map of strings always encodes
	}
	return body
}

// benchPool holds ids of subjects that may be erased.
type benchPool struct {
	mu  sync.Mutex
	ids []string
}

func (p *benchPool) push(ids ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if room := benchPoolMax - len(p.ids); room > 0 {
		p.ids = append(p.ids, ids[:min(room, len(ids))]...)
	}
}

func (p *benchPool) pop() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return "", false
	}
	id := p.ids[len(p.ids)-1]
	p.ids = p.ids[:len(p.ids)-1]
	return id, true
}

func (p *benchPool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// benchEnv is what the workloads share.
type benchEnv struct {
	http    *http.Client
	base    string // custos
	ceiling string // bare handler
	seed    uint64
	draws   uint64  // seeds the workers' draws (-draw-seed, or seed)
	zipf    float64 // > 1: reads and lookups draw by Zipf's law (pick)

	// API keys of the principals each workload acts as.
	tokApp, tokMarketing, tokCS, tokDPO string

	gen      *benchGen
	creates  benchBodies // create bodies made before the steps that send them
	ids      []string    // seeded subjects: read, lookup, update, records
	lookups  [][]byte    // lookup bodies by mobile, parallel to ids
	addrs    []string    // addresses for the update workload
	erasable *benchPool
	jobs     atomic.Int64
	// cache and writer report the SQLite read cache's and writer's
	// counters (nil on PostgreSQL).
	cache  func() sqlite.ReadCacheStats
	writer func() sqlite.WriterStats
	kept   func() sqlite.KeptStats
	// groups reports the PostgreSQL commit groups' counters (nil on
	// SQLite).
	groups func() postgres.GroupStats
}

// principals creates, through the API as the admin, one principal per role
// the workloads act as, and an API key for each. An existing data
// directory has no fresh admin key: a bench admin is then made in process.
func (e *benchEnv) principals(ctx context.Context, n *node) error {
	admin := n.adminToken
	if admin == "" {
		p := &custos.Principal{Name: "bench admin", Kind: custos.KindService, Roles: []string{custos.RoleAdmin}}
		if err := n.svc.CreatePrincipal(system(ctx), p); err != nil {
			return err
		}
		k, err := n.svc.CreateAPIKey(system(ctx), p.ID)
		if err != nil {
			return err
		}
		admin = k.Token
	}
	cl := custoshttp.NewClient(e.base, admin)
	cl.HTTP = e.http
	for _, p := range []struct {
		name, role, kind string
		dst              *string
	}{
		{"bench app", "app", custos.KindService, &e.tokApp},
		{"bench marketing", "marketing", custos.KindStaff, &e.tokMarketing},
		{"bench customer service", "customer-service", custos.KindStaff, &e.tokCS},
		{"bench dpo", "dpo", custos.KindStaff, &e.tokDPO},
	} {
		pr := &custos.Principal{Name: p.name, Kind: p.kind, Roles: []string{p.role}}
		if p.kind == custos.KindStaff { // synthetic staff: prerequisites recorded (S4)
			signed, until := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
			pr.Prerequisites = &custos.Prerequisites{NDASignedAt: &signed, TrainingValidUntil: &until, BackgroundCheckAt: &signed}
		}
		if err := cl.CreatePrincipal(ctx, pr); err != nil {
			return fmt.Errorf("create principal %s: %w", p.role, err)
		}
		k, err := cl.CreateAPIKey(ctx, pr.ID)
		if err != nil {
			return fmt.Errorf("create key for %s: %w", p.role, err)
		}
		*p.dst = k.Token
	}
	return nil
}

// seedSubjects stores n synthetic customers in process, in batches through
// core ImportRows as `custos seed` does, and keeps their ids and mobiles.
func (e *benchEnv) seedSubjects(ctx context.Context, n *node, count int, stderr io.Writer, quiet bool) error {
	sctx := system(ctx)
	purposes := []string{"account", "fulfilment", "legal-obligation", "risk-control"}
	notice, err := syntheticNotice(sctx, n.svc, stderr)
	if err != nil {
		return err
	}
	consent := syntheticConsent(notice, n.svc.Catalog())
	job := fmt.Sprintf("bench-seed-%d", e.seed)
	bar := newProgress(stderr, count, quiet)
	defer bar.done()
	counts := map[string]int{}
	const batch = 500
	for done := 0; done < count; {
		rows := make([]core.ImportInput, 0, batch)
		for i := 0; i < batch && done+i < count; i++ {
			sub := e.gen.full()
			sub.Consent = consent
			rows = append(rows, core.ImportInput{Line: done + i + 1, Subject: sub})
		}
		res, err := n.svc.ImportRows(sctx, purposes, job, rows)
		if err != nil {
			return err
		}
		for i, r := range res {
			counts[r.Status]++
			if r.Status != custos.ImportStored {
				continue
			}
			body, err := json.Marshal(custoshttp.LookupRequest{Field: "mobile", Value: rows[i].Subject.Fields["mobile"]})
			if err != nil {
				return err
			}
			e.ids = append(e.ids, string(r.SubjectID))
			e.lookups = append(e.lookups, body)
		}
		done += len(rows)
		bar.set(done, counts)
	}
	if len(e.ids) == 0 {
		return errors.New("no subject was stored")
	}
	return nil
}

// sampleSubjects fills e.ids with up to k distinct subjects of cfg's
// store, drawn at random with e.seed, and returns how many subjects the
// store holds. It reads through a connection of its own.
func (e *benchEnv) sampleSubjects(ctx context.Context, cfg Config, k int) (int, error) {
	if cfg.Postgres() {
		return e.samplePostgres(ctx, cfg.Store, k)
	}
	return e.sampleSQLite(ctx, cfg.DBPath(), k)
}

// samplePostgres is sampleSubjects for the PostgreSQL store at url: the
// first k subjects in an order the seed shuffles (md5 of the id and the
// seed), which reads every id once.
func (e *benchEnv) samplePostgres(ctx context.Context, url string, k int) (int, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var count int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM subjects`).Scan(&count); err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, errors.New("the store holds no customers (seed it first: custos seed, or a bench run with the same -data and -store)")
	}
	rows, err := db.QueryContext(ctx, `SELECT id FROM subjects ORDER BY md5(id || $1), id LIMIT $2`, strconv.FormatUint(e.seed, 10), k)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return 0, err
		}
		e.ids = append(e.ids, id)
	}
	return count, rows.Err()
}

// sampleSQLite is sampleSubjects for the SQLite store at path, drawn
// uniformly by rowid.
func (e *benchEnv) sampleSQLite(ctx context.Context, path string, k int) (int, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_query_only=on")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var count, maxRow int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM subjects`).Scan(&count, &maxRow); err != nil {
		return 0, err
	}
	if count == 0 {
		return 0, errors.New("the store holds no customers (seed it first: custos seed -data DIR)")
	}
	rng := rand.New(rand.NewPCG(e.seed, 0x7265757365))
	seen := map[string]bool{}
	for tries := 0; len(e.ids) < min(k, int(count)) && tries < 20*k; tries++ {
		var id string
		err := db.QueryRowContext(ctx, `SELECT id FROM subjects WHERE rowid = ?`, 1+rng.Int64N(maxRow)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) || seen[id] {
			continue
		} else if err != nil {
			return 0, err
		}
		seen[id] = true
		e.ids = append(e.ids, id)
	}
	return int(count), nil
}

// benchPrimeWorkers is how many reads -prime keeps in flight.
const benchPrimeWorkers = 16

// prime reads each of e.ids once by id, as the read workload does, with c
// reads in flight, and fails on the first read that does not succeed. A
// node that has served its customers before holds them in its read cache
// (up to its size) and its pages in SQLite's and the kernel's caches; a
// node just started holds nothing, so without this a short step at a
// large store measures mostly first reads.
func (e *benchEnv) prime(ctx context.Context, c int, say func(string, ...any)) error {
	var (
		next, done atomic.Int64
		failed     atomic.Pointer[string]
		wg         sync.WaitGroup
	)
	every := max(int64(len(e.ids))/10, 1)
	for range c {
		wg.Go(func() {
			w := &benchWorker{env: e}
			for failed.Load() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(e.ids)) {
					return
				}
				if code, _ := w.do(ctx, e.readReq(e.ids[i])); code != "" {
					msg := fmt.Sprintf("reading customer %d of %d: %s", i+1, len(e.ids), code)
					failed.CompareAndSwap(nil, &msg)
					return
				}
				if n := done.Add(1); n%every == 0 {
					say("priming: %d of %d customers read", n, len(e.ids))
				}
			}
		})
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		return errors.New(*msg)
	}
	return ctx.Err()
}

// checkMasking reads one seeded subject as the read workload does and
// makes sure the answer masks some fields, so that the workload measures
// the masked path it claims to.
func (e *benchEnv) checkMasking(ctx context.Context) error {
	cl := custoshttp.NewClient(e.base, e.tokMarketing)
	cl.HTTP = e.http
	sub, err := cl.FindSubjectByID(ctx, []string{"marketing"}, custos.SubjectID(e.ids[0]))
	if err != nil {
		return fmt.Errorf("read as marketing: %w", err)
	}
	for _, d := range sub.Decisions {
		if d.Outcome == custos.Masked {
			return nil
		}
	}
	return errors.New("read as marketing: no field came back masked; the read workload would not exercise masking")
}

// topUpErasable makes sure the erase step at concurrency c will not run
// out of subjects: it estimates the rate from earlier erase steps (or the
// create steps, or a generous guess) and imports the shortfall in process,
// outside the measured window.
func (e *benchEnv) topUpErasable(ctx context.Context, n *node, c int, d time.Duration, done []benchResult) error {
	rate := 3000.0 // a guess above what one SQLite writer erases
	if i := slices.IndexFunc(done, func(r benchResult) bool { return r.Workload == "erase" }); i >= 0 {
		rate = max(done[len(done)-1].Throughput, 100) // the erase step just before this one
	} else if i := slices.IndexFunc(done, func(r benchResult) bool { return r.Workload == "create" && r.Concurrency == c }); i >= 0 {
		rate = max(done[i].Throughput*1.5, 1000)
	}
	need := min(int(rate*d.Seconds()*1.5)+c, benchPoolMax)
	short := need - e.erasable.len()
	if short <= 0 {
		return nil
	}
	sctx := system(ctx)
	job := fmt.Sprintf("bench-erasable-%d-%d", e.seed, e.jobs.Add(1))
	for line := 0; line < short; {
		rows := make([]core.ImportInput, 0, benchImportBatch)
		for i := 0; i < benchImportBatch && line+i < short; i++ {
			rows = append(rows, core.ImportInput{Line: line + i + 1, Subject: e.gen.subject()})
		}
		res, err := n.svc.ImportRows(sctx, strings.Split(benchCreatePurposes, ","), job, rows)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Status == custos.ImportStored {
				e.erasable.push(string(r.SubjectID))
			}
		}
		line += len(rows)
	}
	return nil
}

// benchReq is one prepared request. after, when set, runs on a 2xx answer
// outside the timed part; it returns the rows stored (import) and the
// error code of a partly refused answer.
type benchReq struct {
	method, url, token, purpose string
	body                        []byte
	after                       func(body []byte) (rows int, code string)
}

// benchWorkload prepares the next request of a worker; false means there
// is nothing left to do (the erase pool ran dry).
type benchWorkload struct {
	next func(w *benchWorker) (benchReq, bool)
}

func (e *benchEnv) workload(name string) *benchWorkload {
	create := func(w *benchWorker) (benchReq, bool) {
		body := e.creates.pop(e.gen)
		return benchReq{method: http.MethodPost, url: e.base + "/v1/subjects", token: e.tokApp, purpose: benchCreatePurposes, body: body,
			after: func(b []byte) (int, string) {
				var s struct{ ID string }
				if err := json.Unmarshal(b, &s); err != nil || s.ID == "" {
					return 0, "client_decode"
				}
				e.erasable.push(s.ID)
				return 0, ""
			}}, true
	}
	read := func(w *benchWorker) (benchReq, bool) {
		return e.readReq(e.ids[e.pick(w, len(e.ids))]), true
	}
	lookup := func(w *benchWorker) (benchReq, bool) {
		return benchReq{method: http.MethodPost, url: e.base + "/v1/subjects/lookup", token: e.tokCS, purpose: "customer-service",
			body: e.lookups[e.pick(w, len(e.lookups))]}, true
	}
	var wl benchWorkload
	switch name {
	case "ceiling":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			return benchReq{method: http.MethodGet, url: e.ceiling + "/v1/subjects/sub_ceiling", token: e.tokMarketing, purpose: "marketing"}, true
		}
	case "create":
		wl.next = create
	case "read":
		wl.next = read
	case "lookup":
		wl.next = lookup
	case "read-batch":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			n := min(benchReadBatch, len(e.ids))
			ids := make([]string, 0, n)
			for len(ids) < n {
				if id := e.ids[w.rng.IntN(len(e.ids))]; !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			body, err := json.Marshal(map[string][]string{"ids": ids})
			if err != nil {
				panic(err)
			}
			return benchReq{method: http.MethodPost, url: e.base + "/v1/subjects/read", token: e.tokMarketing, purpose: "marketing", body: body,
				after: func(b []byte) (int, string) {
					// Counted, not decoded: a read's answer is not decoded either.
					if got := bytes.Count(b, []byte(`,"subject":{`)); got != n {
						return got, "result_not_read"
					}
					return n, ""
				}}, true
		}
	case "update":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			a := e.addrs[w.rng.IntN(len(e.addrs))]
			body, err := json.Marshal(custos.SubjectUpdate{Fields: map[string]*string{"address": &a}, Provenance: benchProvenance})
			if err != nil {
				panic(err)
			}
			return benchReq{method: http.MethodPatch, url: e.base + "/v1/subjects/" + e.ids[w.rng.IntN(len(e.ids))], token: e.tokCS,
				purpose: "customer-service", body: body}, true
		}
	case "erase":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			id, ok := e.erasable.pop()
			if !ok {
				return benchReq{}, false
			}
			return benchReq{method: http.MethodDelete, url: e.base + "/v1/subjects/" + id + "?reason=bench", token: e.tokDPO, purpose: "legal-obligation"}, true
		}
	case "records":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			rec := custos.NewRecord{Type: "order", OccurredAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Second), Provenance: benchProvenance,
				Data: map[string]any{"order_no": "BO" + strconv.FormatUint(w.rng.Uint64()%1e12, 10), "amount": "128.00", "currency": "CNY",
					"items": []map[string]any{{"sku": "SKU-" + strconv.Itoa(w.rng.IntN(10000)), "qty": 1 + w.rng.IntN(3), "price": "64.00"}}}}
			body, err := json.Marshal(rec)
			if err != nil {
				panic(err)
			}
			return benchReq{method: http.MethodPost, url: e.base + "/v1/subjects/" + e.ids[w.rng.IntN(len(e.ids))] + "/records",
				token: e.tokApp, purpose: "fulfilment", body: body}, true
		}
	case "import":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			rows := make([]core.ImportInput, benchImportBatch)
			for i := range rows {
				rows[i] = core.ImportInput{Line: i + 1, Subject: e.gen.subject()}
			}
			body, err := json.Marshal(custoshttp.ImportRequest{Rows: rows})
			if err != nil {
				panic(err)
			}
			job := fmt.Sprintf("bench-%d-%d", e.seed, e.jobs.Add(1))
			return benchReq{method: http.MethodPost, url: e.base + "/v1/imports/" + url.PathEscape(job) + "/rows", token: e.tokApp,
				purpose: benchCreatePurposes, body: body,
				after: func(b []byte) (int, string) {
					var out struct{ Results []custos.ImportResult }
					if err := json.Unmarshal(b, &out); err != nil || len(out.Results) != benchImportBatch {
						return 0, "client_decode"
					}
					ids := make([]string, 0, len(out.Results))
					code := ""
					for _, r := range out.Results {
						if r.Status == custos.ImportStored {
							ids = append(ids, string(r.SubjectID))
						} else if code == "" {
							code = "row_" + r.Status
						}
					}
					e.erasable.push(ids...)
					return len(ids), code
				}}, true
		}
	case "mixed":
		wl.next = func(w *benchWorker) (benchReq, bool) {
			switch p := w.rng.IntN(100); {
			case p < 80:
				return read(w)
			case p < 90:
				return lookup(w)
			default:
				return create(w)
			}
		}
	default:
		panic("bench: unknown workload " + name)
	}
	return &wl
}

// readReq is the read workload's request: customer id by id, as
// marketing, masked.
func (e *benchEnv) readReq(id string) benchReq {
	return benchReq{method: http.MethodGet, url: e.base + "/v1/subjects/" + id, token: e.tokMarketing, purpose: "marketing"}
}

// pick draws which of n customers a read or lookup asks for: uniformly,
// or with -zipf by Zipf's law over their order (ids are sampled or seeded
// in random order, so the favoured ones are any customers).
func (e *benchEnv) pick(w *benchWorker, n int) int {
	if e.zipf <= 1 || n < 2 {
		return w.rng.IntN(n)
	}
	if w.zipf == nil || w.zipfN != n {
		w.zipf, w.zipfN = rand.NewZipf(w.rng, e.zipf, 1, uint64(n-1)), n
	}
	return int(w.zipf.Uint64())
}

// workerRNG is the random source of worker i of a step at concurrency
// c: the same in every run with the same draw seed.
func (e *benchEnv) workerRNG(i, c int) *rand.Rand {
	return rand.New(rand.NewPCG(e.draws, uint64(i)+uint64(c)<<32))
}

// benchWorker is one closed-loop client.
type benchWorker struct {
	env      *benchEnv
	rng      *rand.Rand
	zipf     *rand.Zipf // pick's, for zipfN customers
	zipfN    int
	buf      bytes.Buffer
	samples  []int64 // latencies in ns; a uniform reservoir past limit
	limit    int
	seen     int64 // measured requests
	errs     int64
	lateErrs int64 // errors of requests completing after the window
	late     map[string]*benchCodeSeen
	rows     int64
	lateRows int64 // rows stored by requests completing after the window
	codes    map[string]*benchCodeSeen
	maxNanos int64
}

type benchCodeSeen struct {
	count int64
	first time.Time
}

func (w *benchWorker) record(d time.Duration) {
	w.seen++
	w.maxNanos = max(w.maxNanos, int64(d))
	if len(w.samples) < w.limit {
		w.samples = append(w.samples, int64(d))
		return
	}
	if j := w.rng.Int64N(w.seen); j < int64(w.limit) {
		w.samples[j] = int64(d)
	}
}

func (w *benchWorker) fail(code string) {
	w.errs++
	benchCount(w.codes, code)
}

// benchMergeCodes adds a worker's error counts to the step's.
func benchMergeCodes(into, from map[string]*benchCodeSeen) {
	for k, v := range from {
		if c := into[k]; c == nil {
			into[k] = &benchCodeSeen{count: v.count, first: v.first}
		} else {
			c.count += v.count
			if v.first.Before(c.first) {
				c.first = v.first
			}
		}
	}
}

// benchFirstCodes lists the first five codes seen, in order of first sight.
func benchFirstCodes(codes map[string]*benchCodeSeen) []benchCode {
	var cl []benchCode
	for _, k := range slices.SortedFunc(maps.Keys(codes), func(a, b string) int {
		return cmp.Or(codes[a].first.Compare(codes[b].first), strings.Compare(a, b))
	}) {
		cl = append(cl, benchCode{Code: k, Count: codes[k].count})
	}
	if len(cl) > 5 {
		cl = cl[:5]
	}
	return cl
}

// benchCount counts one error of code in codes.
func benchCount(codes map[string]*benchCodeSeen, code string) {
	c := codes[code]
	if c == nil {
		c = &benchCodeSeen{first: time.Now()}
		codes[code] = c
	}
	c.count++
}

// do sends one request and reads the whole answer; it returns the error
// code ("" on success) and, for a 2xx answer, the body.
func (w *benchWorker) do(ctx context.Context, r benchReq) (string, []byte) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return "client_request", nil
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	req.Header.Set("Custos-Purpose", r.purpose)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := w.env.http.Do(req)
	if err != nil {
		return "transport", nil
	}
	w.buf.Reset()
	_, err = w.buf.ReadFrom(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "transport_read", nil
	}
	if resp.StatusCode >= 300 {
		var p struct{ Code string }
		if json.Unmarshal(w.buf.Bytes(), &p) == nil && p.Code != "" {
			return p.Code, nil
		}
		return "http_" + strconv.Itoa(resp.StatusCode), nil
	}
	return "", w.buf.Bytes()
}

// benchUse is what getrusage says of the whole process (every thread):
// CPU time, peak RSS, and the context switches its threads made, waiting
// (voluntary: a futex, epoll or I/O wait) and preempted (involuntary).
type benchUse struct {
	cpu                    time.Duration
	maxRSS                 int64
	voluntary, involuntary int64
}

// benchGC is what the runtime says of the garbage collector: cycles
// ended, the CPU their marking took (background workers and assists, in
// seconds), and the heap the last one left live.
type benchGC struct {
	cycles  uint64
	markCPU float64
	live    uint64
}

// benchGCMetrics are the runtime/metrics samples benchReadGC reads.
var benchGCMetrics = []string{
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/mark/idle:cpu-seconds",
	"/gc/heap/live:bytes",
}

// benchReadGC reads the collector's counters; a metric this Go does not
// have reads as zero.
func benchReadGC() benchGC {
	samples := make([]metrics.Sample, len(benchGCMetrics))
	for i, name := range benchGCMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	var g benchGC
	for _, s := range samples {
		switch {
		case s.Value.Kind() == metrics.KindBad:
		case s.Name == "/gc/cycles/total:gc-cycles":
			g.cycles = s.Value.Uint64()
		case s.Name == "/gc/heap/live:bytes":
			g.live = s.Value.Uint64()
		default:
			g.markCPU += s.Value.Float64()
		}
	}
	return g
}

// benchUsage is the process's CPU time, peak RSS and context switches.
func benchUsage() benchUse {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return benchUse{}
	}
	return benchUse{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), maxRSS: benchMaxRSS(&ru),
		voluntary: int64(ru.Nvcsw), involuntary: int64(ru.Nivcsw)}
}

// benchMaxRSS is ru's peak resident memory in bytes.
func benchMaxRSS(ru *syscall.Rusage) int64 {
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss) // bytes there
	}
	return int64(ru.Maxrss) * 1024 // kilobytes elsewhere
}

// benchMachineCPU reads the machine's CPU time from /proc/stat, in clock
// ticks summed over every CPU: all of it, and the part idle or waiting for
// I/O. ok is false where there is no /proc/stat.
func benchMachineCPU() (total, idle int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	return benchParseProcStat(string(b))
}

// benchParseProcStat parses the first line of /proc/stat ("cpu  user nice
// system idle iowait irq softirq steal …"): total is the sum of its
// fields up to steal, idle is idle + iowait. guest and guest_nice are
// already inside user and nice, so they are not added again.
func benchParseProcStat(s string) (total, idle int64, ok bool) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return total, idle, true
}

// benchResetPeakRSS resets the kernel's peak-RSS mark to the current RSS
// (Linux ≥ 4.0), so Getrusage's maxrss measures one step. It reports
// whether that worked; if not, peak RSS is since the process started.
func benchResetPeakRSS() bool {
	f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, werr := f.Write([]byte("5"))
	cerr := f.Close()
	return werr == nil && cerr == nil
}

// benchStep runs one workload at concurrency c: warm-up, then the measured
// window; requests in flight at its end are waited for and counted.
func benchStep(ctx context.Context, env *benchEnv, name string, wl *benchWorkload, c int, warmup, d time.Duration, ceilRPS float64, resetRSS bool) (benchResult, error) {
	res := benchResult{Workload: name, Concurrency: c, Procs: runtime.GOMAXPROCS(0), CeilingRPS: ceilRPS}
	limit := benchMaxSamples / c
	prealloc := 1 << 14
	if ceilRPS > 0 { // no workload outruns the ceiling
		prealloc = int(ceilRPS*d.Seconds()/float64(c)*1.2) + 64
	}
	prealloc = min(prealloc, limit)
	workers := make([]*benchWorker, c)
	for i := range workers {
		workers[i] = &benchWorker{env: env, rng: env.workerRNG(i, c),
			samples: make([]int64, 0, prealloc), limit: limit, codes: map[string]*benchCodeSeen{},
			late: map[string]*benchCodeSeen{}}
	}
	// Leftovers of the last step are not this step's cost: collect them
	// and hand the memory back, so the step's peak RSS starts low.
	debug.FreeOSMemory()

	start := time.Now()
	measureAt := start.Add(warmup)
	deadline := measureAt.Add(d)
	var exhausted atomic.Bool
	// The clock goroutine takes the CPU and peak-RSS readings at the
	// edges of the measured window, not when the last straggler is in.
	var use0, use1 benchUse
	var gc0, gc1 benchGC
	var mach0, mach1 [2]int64 // the machine's CPU ticks: all, idle
	var machOK0, machOK1 bool
	var cache0, cache1 sqlite.ReadCacheStats
	var kept0, kept1 sqlite.KeptStats
	var writer0, writer1 sqlite.WriterStats
	var writerAt0, writerAt1 time.Time // when each was taken
	var groups0, groups1 postgres.GroupStats
	var rss int64
	measured := make(chan struct{})
	go func() {
		defer close(measured)
		for i, at := range []time.Time{measureAt, deadline} {
			t := time.NewTimer(time.Until(at))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			if i == 0 {
				if resetRSS {
					benchResetPeakRSS()
				}
				use0, gc0 = benchUsage(), benchReadGC()
				mach0[0], mach0[1], machOK0 = benchMachineCPU()
				if env.cache != nil {
					cache0, writer0, writerAt0, kept0 = env.cache(), env.writer(), time.Now(), env.kept()
				}
				if env.groups != nil {
					groups0 = env.groups()
				}
			} else {
				use1, gc1 = benchUsage(), benchReadGC()
				rss = use1.maxRSS
				mach1[0], mach1[1], machOK1 = benchMachineCPU()
				if env.cache != nil {
					cache1, writer1, writerAt1, kept1 = env.cache(), env.writer(), time.Now(), env.kept()
				}
				if env.groups != nil {
					groups1 = env.groups()
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if !time.Now().Before(deadline) {
					return
				}
				r, ok := wl.next(w)
				if !ok {
					exhausted.Store(true)
					return
				}
				t0 := time.Now()
				code, body := w.do(ctx, r)
				t1 := time.Now()
				var rows int
				if code == "" && r.after != nil {
					rows, code = r.after(body) // also outside the window: it feeds the erase pool
				}
				// A request counts when it completes inside the window, so
				// requests far longer than the warm-up (large imports at high
				// concurrency) are neither lost nor counted twice.
				if t1.Before(measureAt) {
					continue
				}
				if !t1.Before(deadline) {
					w.lateRows += int64(rows)
					if code != "" {
						w.lateErrs++
						benchCount(w.late, code)
					}
					continue
				}
				w.rows += int64(rows)
				w.record(t1.Sub(t0))
				if code != "" {
					w.fail(code)
				}
			}
		}()
	}
	wg.Wait()
	res.DrainSeconds = max(time.Since(deadline), 0).Seconds()
	<-measured
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Seconds = d.Seconds()
	codes, late := map[string]*benchCodeSeen{}, map[string]*benchCodeSeen{}
	var lat []benchWeighted
	var rows, lateRows int64
	exact := true
	for _, w := range workers {
		res.Requests += w.seen
		res.Errors += w.errs
		res.LateErrors += w.lateErrs
		res.MaxMs = max(res.MaxMs, float64(w.maxNanos)/1e6)
		benchMergeCodes(codes, w.codes)
		benchMergeCodes(late, w.late)
		weight := 1.0
		if w.seen > int64(len(w.samples)) {
			exact = false
			weight = float64(w.seen) / float64(len(w.samples))
		}
		for _, s := range w.samples {
			lat = append(lat, benchWeighted{s, weight})
		}
		rows += w.rows
		lateRows += w.lateRows
	}
	res.Samples = len(lat)
	res.P50ms, res.P95ms, res.P99ms = benchPercentiles(lat, exact)
	res.Throughput = float64(res.Requests) / res.Seconds
	res.RowsPerSec = float64(rows) / res.Seconds
	if lateRows > 0 && name == "import" {
		res.RowsPerSecDrained = float64(rows+lateRows) / (res.Seconds + res.DrainSeconds)
	}
	res.ErrorCodes, res.LateErrorCodes = benchFirstCodes(codes), benchFirstCodes(late)
	res.CPUSeconds = (use1.cpu - use0.cpu).Seconds()
	res.GCCycles, res.GCLiveBytes = gc1.cycles-gc0.cycles, gc1.live
	if res.GCCycles > 0 {
		res.GCMarkMsPerCycle = (gc1.markCPU - gc0.markCPU) * 1000 / float64(res.GCCycles)
	}
	if machOK0 && machOK1 && mach1[0] > mach0[0] {
		idle := float64(mach1[1]-mach0[1]) / float64(mach1[0]-mach0[0])
		res.MachineIdle = &idle
	}
	if looked := (cache1.Hits - cache0.Hits) + (cache1.Misses - cache0.Misses); looked > 0 {
		res.CacheHitRate = float64(cache1.Hits-cache0.Hits) / float64(looked)
	}
	if ran := (kept1.Reused - kept0.Reused) + (kept1.Begun - kept0.Begun); ran > 0 {
		res.KeptRate = float64(kept1.Reused-kept0.Reused) / float64(ran)
		res.KeptStale = float64(kept1.Stale-kept0.Stale) / float64(ran)
	}
	if groups := writer1.Groups - writer0.Groups; groups > 0 && writerAt1.After(writerAt0) {
		// Over the time between the two looks, which a late timer makes
		// a little longer than the window: busy time counts the running
		// group up to each look, so the share stays at most 1.
		res.WriterBusy = float64(writer1.Busy-writer0.Busy) / float64(writerAt1.Sub(writerAt0))
		res.GroupSize = float64(writer1.Members-writer0.Members) / float64(groups)
		res.PagesPerWrite = float64(writer1.Pages-writer0.Pages) / float64(writer1.Members-writer0.Members)
		res.SyncsPerGroup = float64(writer1.Syncs-writer0.Syncs) / float64(groups)
		if n := writer1.Filings - writer0.Filings; n > 0 {
			res.FilingsPerThousand = 1000 * float64(n) / float64(writer1.Members-writer0.Members)
			res.FilingMs = float64((writer1.FilingTime - writer0.FilingTime).Microseconds()) / 1000 / float64(n)
		}
		res.EarlyShare = float64(writer1.Early-writer0.Early) / float64(groups)
	}
	if groups := groups1.Groups - groups0.Groups; groups > 0 {
		res.GroupSize = float64(groups1.Members-groups0.Members) / float64(groups)
		res.DeferredStatements = groups1.Deferred - groups0.Deferred
		res.GroupsUndeferred = groups1.Undeferred - groups0.Undeferred
		res.GroupEnds = groups
		res.OneTripEnds, res.OneTripFallbacks = groups1.OneTrip-groups0.OneTrip, groups1.OneTripFellBack-groups0.OneTripFellBack
		res.EarlyShare = float64(groups1.Async-groups0.Async) / float64(groups)
		res.pgGroups = true
	}
	if looked := (groups1.CacheHits - groups0.CacheHits) + (groups1.CacheMisses - groups0.CacheMisses); looked > 0 {
		res.CacheHitRate = float64(groups1.CacheHits-groups0.CacheHits) / float64(looked)
	}
	res.CacheStale = groups1.CacheStale - groups0.CacheStale
	res.CacheKeysFilled = groups1.CacheKeysFilled - groups0.CacheKeysFilled
	res.LateJoins, res.LateJoined = groups1.LateJoins-groups0.LateJoins, groups1.LateJoined-groups0.LateJoined
	if st := groups1.ReadStatements - groups0.ReadStatements; st > 0 {
		res.ReadsPerStatement = float64(groups1.BatchedReads-groups0.BatchedReads) / float64(st)
	}
	if res.Requests > 0 {
		res.CPUPerRequestUS = res.CPUSeconds * 1e6 / float64(res.Requests)
		res.WaitsPerRequest = float64(use1.voluntary-use0.voluntary) / float64(res.Requests)
		res.PreemptionsPerRequest = float64(use1.involuntary-use0.involuntary) / float64(res.Requests)
	}
	res.PeakRSSBytes = rss
	if name == "ceiling" {
		res.CeilingRPS = res.Throughput
	}
	if res.CeilingRPS > 0 {
		res.Ratio = res.Throughput / res.CeilingRPS
	}
	switch {
	case exhausted.Load():
		res.Note = "ran out of subjects to erase before the end of the step"
	case res.Requests < int64(c):
		res.Note = fmt.Sprintf("only %d requests completed inside the window (fewer than the %d workers); those in flight took %.1fs more: use a longer -duration", res.Requests, c, res.DrainSeconds)
	}
	return res, nil
}

// benchWeighted is a latency sample standing for weight requests (more
// than one when its worker's reservoir overflowed).
type benchWeighted struct {
	nanos  int64
	weight float64
}

// benchPercentiles returns p50, p95 and p99 in milliseconds (nearest rank).
func benchPercentiles(s []benchWeighted, exact bool) (p50, p95, p99 float64) {
	if len(s) == 0 {
		return 0, 0, 0
	}
	slices.SortFunc(s, func(a, b benchWeighted) int { return cmp.Compare(a.nanos, b.nanos) })
	ps := []float64{0.50, 0.95, 0.99}
	out := make([]float64, len(ps))
	if exact {
		for i, p := range ps {
			k := max(int(math.Ceil(p*float64(len(s))))-1, 0)
			out[i] = float64(s[k].nanos) / 1e6
		}
		return out[0], out[1], out[2]
	}
	var total float64
	for _, x := range s {
		total += x.weight
	}
	var acc float64
	i := 0
	for _, x := range s {
		acc += x.weight
		for i < len(ps) && acc >= ps[i]*total {
			out[i] = float64(x.nanos) / 1e6
			i++
		}
	}
	for ; i < len(ps); i++ {
		out[i] = float64(s[len(s)-1].nanos) / 1e6
	}
	return out[0], out[1], out[2]
}

func benchWriteAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchMs formats milliseconds with three significant digits or so.
func benchMs(ms float64) string {
	switch {
	case ms < 1:
		return strconv.FormatFloat(ms, 'f', 3, 64)
	case ms < 100:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	}
	return strconv.FormatFloat(ms, 'f', 0, 64)
}

// benchTable prints the results as an aligned table.
func benchTable(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "custos bench: %d subjects, %s per step (warm-up %s), %s; %d CPU (%s), GOMAXPROCS %d\n",
		rep.Subjects, time.Duration(rep.DurationSec*float64(time.Second)), time.Duration(rep.WarmupSec*float64(time.Second)),
		rep.Store, rep.NumCPU, cmp.Or(rep.CPUModel, "unknown CPU"), rep.GOMAXPROCS)
	if rep.Procs > 0 {
		fmt.Fprintf(w, "custos's steps ran with GOMAXPROCS %d (-procs); the seed, the priming and the ceiling's steps with %d\n", rep.Procs, rep.GOMAXPROCS)
	}
	if rep.Zipf > 0 {
		fmt.Fprintf(w, "reads and lookups drew their customer by Zipf's law, exponent %g (uniformly without -zipf)\n", rep.Zipf)
	}
	if rep.Warm != nil {
		from := "the last run's list"
		if rep.Warm.FromAuditLog {
			from = "the audit log's latest reads and lookups"
		}
		fmt.Fprintf(w, "read cache warmed in the background from %s (-warm): %s\n", from, rep.Warm)
	}
	if rep.ReadAuditDurability != "" {
		fmt.Fprintf(w, "read_audit_durability %s: reads, lookups and denials were answered once their audit event was committed, before it was on disk (not the default)\n", rep.ReadAuditDurability)
	}
	if rep.GC != "" {
		fmt.Fprintf(w, "garbage collector: %s, not Go's default, in the whole process, the ceiling's steps included\n", rep.GC)
	}
	if rep.AnalyzeSeconds > 0 {
		fmt.Fprintf(w, "planner statistics refreshed after the seed (ANALYZE, %.1f s), as autovacuum does within a minute of a load\n", rep.AnalyzeSeconds)
	}
	if rep.PrimeSeconds > 0 {
		fmt.Fprintf(w, "primed: each customer read once before the steps (%.1f s), so the steps measure a node that has served them before\n", rep.PrimeSeconds)
	}
	if rep.Rounds > 0 {
		fmt.Fprintf(w, "the median of %d runs, started %s; counts added up, peak memory the largest\n", rep.Rounds, strings.Join(rep.MergedFrom, ", "))
	}
	rss := "peak RSS per step"
	if !rep.RSSPerStep {
		rss = "peak RSS since start"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-8s\tc\trequests\treq/s\tp50 ms\tp95 ms\tp99 ms\terrors\tCPU s\tCPU µs/req\t%s MiB\tvs ceiling\t\n", "workload", rss)
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%d\t%.2f\t%.0f\t%.0f\t%.1f%%\t\n",
			fmt.Sprintf("%-8s", r.Workload), r.Concurrency, r.Requests, r.Throughput, benchMs(r.P50ms), benchMs(r.P95ms), benchMs(r.P99ms),
			r.Errors, r.CPUSeconds, r.CPUPerRequestUS, float64(r.PeakRSSBytes)/(1<<20), r.Ratio*100)
	}
	if err := tw.Flush(); err != nil {
		return
	}
	for _, r := range rep.Results {
		var notes []string
		if r.RowsPerSec > 0 && r.Workload == "read-batch" {
			notes = append(notes, fmt.Sprintf("%.0f customers/s read, %d a request", r.RowsPerSec, benchReadBatch))
		} else if r.RowsPerSec > 0 {
			notes = append(notes, fmt.Sprintf("%.0f rows/s stored", r.RowsPerSec))
		}
		if r.RowsPerSecDrained > 0 && r.Workload == "import" {
			notes = append(notes, fmt.Sprintf("%.0f rows/s counting the requests in flight at the end and their %.1fs drain", r.RowsPerSecDrained, r.DrainSeconds))
		}
		if r.WaitsPerRequest > 0 {
			n := fmt.Sprintf("%.2f thread waits and %.2f preemptions a request", r.WaitsPerRequest, r.PreemptionsPerRequest)
			if r.MachineIdle != nil {
				n += fmt.Sprintf(", machine %.0f %% idle", *r.MachineIdle*100)
			}
			notes = append(notes, n)
		}
		if r.GCCycles > 0 {
			notes = append(notes, fmt.Sprintf("collector: %.1f cycles/s, marking %.1f ms of CPU a cycle, live heap %.0f MiB",
				float64(r.GCCycles)/r.Seconds, r.GCMarkMsPerCycle, float64(r.GCLiveBytes)/(1<<20)))
		}
		if r.CacheHitRate > 0 && r.Workload != "ceiling" {
			what := "subject rows"
			if r.pgGroups || r.ReadsPerStatement > 0 {
				what = "reads by id and lookups"
			}
			notes = append(notes, fmt.Sprintf("read cache answered %.1f %% of %s", r.CacheHitRate*100, what))
		}
		if r.CacheStale > 0 {
			notes = append(notes, fmt.Sprintf("%d cached answers found stale and read again", r.CacheStale))
		}
		if r.CacheKeysFilled > 0 {
			notes = append(notes, fmt.Sprintf("%d lookup keys loaded for customers read by id", r.CacheKeysFilled))
		}
		if r.KeptRate > 0 && r.Workload != "ceiling" {
			notes = append(notes, fmt.Sprintf("kept snapshots answered %.1f %% of the reads that ran SQL (%.1f %% ran again)", r.KeptRate*100, r.KeptStale*100))
		}
		if r.GroupSize > 0 && r.Workload != "ceiling" && !r.pgGroups {
			notes = append(notes, fmt.Sprintf("writer busy %.0f %%, %.1f writes per commit, %.1f pages per write, %.2f syncs per commit", r.WriterBusy*100, r.GroupSize, r.PagesPerWrite, r.SyncsPerGroup))
			if r.FilingsPerThousand > 0 {
				notes = append(notes, fmt.Sprintf("%.2f audit index filings per 1,000 writes, %.1f ms each", r.FilingsPerThousand, r.FilingMs))
			}
			if r.EarlyShare > 0 {
				notes = append(notes, fmt.Sprintf("%.1f %% of commits answered before their sync", r.EarlyShare*100))
			}
		} else if r.GroupSize > 0 && r.Workload != "ceiling" {
			notes = append(notes, fmt.Sprintf("%.1f writes per commit, %d statements sent deferred, %d groups run again without deferring",
				r.GroupSize, r.DeferredStatements, r.GroupsUndeferred))
			if r.OneTripEnds > 0 {
				notes = append(notes, fmt.Sprintf("%d group ends in one round trip for %d groups, a group run again ending again (%d of them fell back: a checkpoint was due)",
					r.OneTripEnds-r.OneTripFallbacks, r.GroupEnds, r.OneTripFallbacks))
			}
			if r.EarlyShare > 0 {
				notes = append(notes, fmt.Sprintf("%.1f %% of commits answered before their flush", r.EarlyShare*100))
			}
			if r.ReadsPerStatement > 0 {
				notes = append(notes, fmt.Sprintf("%.2f reads a statement", r.ReadsPerStatement))
			}
			if r.LateJoins > 0 {
				notes = append(notes, fmt.Sprintf("%d groups of reads waited for the other writer's end, taking %d requests meanwhile", r.LateJoins, r.LateJoined))
			}
		}
		codeList := func(cl []benchCode) string {
			var cs []string
			for _, c := range cl {
				cs = append(cs, fmt.Sprintf("%s×%d", c.Code, c.Count))
			}
			return strings.Join(cs, ", ")
		}
		if len(r.ErrorCodes) > 0 {
			notes = append(notes, "errors: "+codeList(r.ErrorCodes))
		}
		if r.LateErrors > 0 {
			notes = append(notes, fmt.Sprintf("%d errors among the requests that completed after the window (%s)", r.LateErrors, codeList(r.LateErrorCodes)))
		}
		if r.Note != "" {
			notes = append(notes, r.Note)
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "  %s c=%d: %s\n", r.Workload, r.Concurrency, strings.Join(notes, "; "))
		}
	}
	benchTargetLines(w, rep)
}

// benchCPUModel is the CPU model name from /proc/cpuinfo, if there is one.
func benchCPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// benchLoadAvg is the first three fields of /proc/loadavg, if there is one.
func benchLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchRowNoun names what a workload's rows are: customers a batch read
// returned, or rows an import stored.
func benchRowNoun(workload string) string {
	if workload == "read-batch" {
		return "customers"
	}
	return "rows"
}
