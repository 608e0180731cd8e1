package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"custos"
	"custos/core"
	custoshttp "custos/http"
)

// importReject is one line of the reject file: the line number and the
// reasons, never the values (the reject file must not become a plaintext
// copy of personal data; the line number points into the source file).
//
// A line refused by a run whose answer was lost (an interrupted import) is
// reported by the run that resumes the job: the server answers it
// "already" with the earlier status and reasons. Job tells which import a
// line belongs to, so a resumed run adds only the lines not reported yet.
type importReject struct {
	Line       int                `json:"line"`
	Status     string             `json:"status"`
	SubjectID  custos.SubjectID   `json:"existing_id,omitempty"`
	Message    string             `json:"message,omitempty"`
	Violations []custos.Violation `json:"errors,omitempty"`
	Job        string             `json:"job,omitempty"`
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "custos server URL (env CUSTOS_SERVER; default http://"+DefaultAddr+")")
	token := fs.String("token", "", "API key (env CUSTOS_TOKEN)")
	purpose := fs.String("purpose", "", "declared purpose(s) of the collection, comma-separated (required)")
	format := fs.String("format", "", "csv or jsonl (default: from the file name)")
	batch := fs.Int("batch", 500, "rows per request (1–1000)")
	rejects := fs.String("rejects", "", "reject file (default FILE.rejects.jsonl)")
	collector := fs.String("collector", "import", "provenance: who collected the data")
	channel := fs.String("channel", "import", "provenance: channel")
	source := fs.String("source", "", "provenance: data source (required)")
	location := fs.String("location", "", "provenance: location")
	plan := fs.String("plan", "", "provenance: approved collection plan id (default: the server picks the approved plan of the purpose)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	inflight := fs.Int("inflight", 2, "batches sent before the answer to the first is awaited (1–16): the server prepares one while it writes another")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: custos import [flags] FILE\n\nEach valid row is stored; each refused row goes to the reject file with its line\nnumber and reasons. Running the same command again resumes without duplicates.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(reorderArgs(args)); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	path := fs.Arg(0)
	if *server == "" {
		*server = getenv("CUSTOS_SERVER")
	}
	if *server == "" {
		*server = "http://" + DefaultAddr
	}
	if *token == "" {
		*token = getenv("CUSTOS_TOKEN")
	}
	var problems []string
	if *token == "" {
		problems = append(problems, "-token (or CUSTOS_TOKEN) is required")
	}
	if *purpose == "" {
		problems = append(problems, "-purpose is required")
	}
	if *source == "" {
		problems = append(problems, "-source is required (provenance, C6)")
	}
	if *batch < 1 || *batch > custoshttp.MaxImportBatch {
		problems = append(problems, "-batch must be 1–1000")
	}
	if *inflight < 1 || *inflight > maxInflight {
		problems = append(problems, "-inflight must be 1–16")
	}
	if *format == "" {
		switch {
		case strings.HasSuffix(path, ".csv"):
			*format = "csv"
		case strings.HasSuffix(path, ".jsonl"), strings.HasSuffix(path, ".ndjson"):
			*format = "jsonl"
		default:
			problems = append(problems, "-format csv|jsonl is required for a file without a .csv or .jsonl extension")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	if *rejects == "" {
		*rejects = path + ".rejects.jsonl"
	}
	job, total, err := fileJob(path)
	if err != nil {
		return err
	}
	prov := custos.Provenance{Collector: *collector, Channel: *channel, Source: *source, Location: *location, Plan: *plan}
	rows, err := readRows(path, *format, prov)
	if err != nil {
		return err
	}
	reported, complete, err := reportedLines(*rejects, job)
	if err != nil {
		return err
	}
	rf, err := os.OpenFile(*rejects, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer rf.Close()
	rw := bufio.NewWriter(rf)
	if !complete {
		// An earlier run stopped half-way through a line: end it, so the
		// next line stays readable.
		if err := rw.WriteByte('\n'); err != nil {
			return err
		}
	}
	client := custoshttp.NewClient(*server, *token)
	// Keep a connection per batch in flight (the default keeps two).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *inflight
	client.HTTP.Transport = tr
	purposes := strings.Split(*purpose, ",")
	bar := newProgress(stderr, total, *quiet)
	counts := map[string]int{}
	recovered := 0 // "already" lines refused by an earlier run and reported only now
	// Up to -inflight batches are on their way at once; their answers are
	// taken in line order, so the reject file and the progress stay in
	// line order. When one fails, the later ones are abandoned: the server
	// keeps what it committed of them, and the run that resumes the job
	// gets those lines back as "already", reported then.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		queue  []*sentBatch
		failed error
	)
	stop := func(err error) error {
		cancel()
		wg.Wait()
		bar.done()
		return err
	}
	handle := func(b *sentBatch) error {
		<-b.done
		if b.err != nil {
			return fmt.Errorf("import stopped at line %d (run the same command again to resume): %w", b.rows[0].Line, b.err)
		}
		for _, r := range b.res {
			counts[r.Status]++
			status := r.Status
			if r.Status == custos.ImportAlready {
				// Refused by an earlier run of this job: report it unless
				// that run did (its answer may have been lost).
				if (r.Previous != custos.ImportRejected && r.Previous != custos.ImportDuplicate) || reported[r.Line] {
					continue
				}
				status = r.Previous
				recovered++
			} else if r.Status != custos.ImportRejected && r.Status != custos.ImportDuplicate {
				continue
			}
			enc, err := json.Marshal(importReject{Line: r.Line, Job: job, Status: status, SubjectID: r.SubjectID, Message: r.Message, Violations: r.Violations})
			if err != nil {
				return err
			}
			if _, err := rw.Write(append(enc, '\n')); err != nil {
				return err
			}
			reported[r.Line] = true
		}
		if err := rw.Flush(); err != nil {
			return err
		}
		bar.set(b.rows[len(b.rows)-1].Line, counts)
		return nil
	}
	// submit sends rows once fewer than -inflight batches are out,
	// handling the oldest answers first.
	submit := func(rows []core.ImportInput) error {
		for len(queue) >= *inflight {
			b := queue[0]
			queue = queue[1:]
			if err := handle(b); err != nil {
				return err
			}
		}
		b := &sentBatch{rows: rows, done: make(chan struct{})}
		queue = append(queue, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(b.done)
			b.res, b.err = importBatch(ctx, client, purposes, job, b.rows)
		}()
		return nil
	}
	var pending []core.ImportInput
	for row, err := range rows {
		if err != nil {
			failed = err
			break
		}
		in := row.ImportInput
		if row.parseErr != nil {
			// A line that cannot be parsed is a rejected row too. The
			// server records it (with the rule, never the line), so a
			// resumed run does not report it twice.
			in = core.ImportInput{Line: row.Line, ParseError: row.parseErr.Error()}
		}
		pending = append(pending, in)
		if len(pending) >= *batch {
			if err := submit(pending); err != nil {
				return stop(err)
			}
			pending = nil
		}
	}
	if failed == nil && len(pending) > 0 {
		if err := submit(pending); err != nil {
			return stop(err)
		}
	}
	// The batches sent before a read error are still answered and
	// reported.
	for _, b := range queue {
		if err := handle(b); err != nil {
			return stop(err)
		}
	}
	if failed != nil {
		return stop(failed)
	}
	if err := rw.Flush(); err != nil {
		return err
	}
	bar.done()
	fmt.Fprintf(stdout, "import %s: %d stored, %d rejected, %d duplicate, %d already imported by an earlier run\n",
		job, counts[custos.ImportStored], counts[custos.ImportRejected], counts[custos.ImportDuplicate], counts[custos.ImportAlready])
	if recovered > 0 {
		fmt.Fprintf(stdout, "%d of the lines imported by an earlier run were refused by it and are now in the reject file\n", recovered)
	}
	if counts[custos.ImportRejected]+counts[custos.ImportDuplicate]+recovered > 0 {
		fmt.Fprintf(stdout, "refused rows (line numbers and reasons, no values): %s\n", *rejects)
	}
	return nil
}

// reportedLines returns the lines of job that the reject file at path
// reports already (lines written before reject lines named their job
// count too), and whether the file ends with a complete line. A missing
// file reports nothing; a line that is not a reject entry is skipped.
func reportedLines(path, job string) (map[int]bool, bool, error) {
	lines := map[int]bool{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return lines, true, nil
	} else if err != nil {
		return nil, false, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	complete := true
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			complete = b[len(b)-1] == '\n'
			var r struct {
				Line int    `json:"line"`
				Job  string `json:"job"`
			}
			if json.Unmarshal(b, &r) == nil && r.Line > 0 && (r.Job == "" || r.Job == job) {
				lines[r.Line] = true
			}
		}
		if err == io.EOF {
			return lines, complete, nil
		} else if err != nil {
			return nil, false, err
		}
	}
}

// reorderArgs lets flags follow the file name ("import data.csv -purpose x").
func reorderArgs(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !isBoolFlag(a) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func isBoolFlag(a string) bool {
	a = strings.TrimLeft(a, "-")
	return a == "quiet" || a == "h" || a == "help"
}

// fileJob names the import job after the file's content, so running the
// same file again resumes the same job, and counts its lines.
func fileJob(path string) (string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	lines := 0
	buf := make([]byte, 1<<16)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		lines += strings.Count(string(buf[:n]), "\n")
		if err == io.EOF {
			break
		} else if err != nil {
			return "", 0, err
		}
	}
	return "imp-" + hex.EncodeToString(h.Sum(nil))[:24], lines, nil
}

// maxInflight bounds -inflight.
const maxInflight = 16

// sentBatch is a batch on its way to the server; done is closed when its
// answer (res or err) is in.
type sentBatch struct {
	rows []core.ImportInput
	res  []*custos.ImportResult
	err  error
	done chan struct{}
}

type importLine struct {
	core.ImportInput
	parseErr error
}

// readRows yields the rows of a CSV (header row of field names) or JSON
// Lines file (one object of field → value per line), numbered by line.
func readRows(path, format string, prov custos.Provenance) (func(yield func(importLine, error) bool), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return func(yield func(importLine, error) bool) {
		defer f.Close()
		switch format {
		case "csv":
			r := csv.NewReader(bufio.NewReader(f))
			r.FieldsPerRecord = -1
			header, err := r.Read()
			if err != nil {
				yield(importLine{}, fmt.Errorf("%s: reading the header row: %w", path, err))
				return
			}
			for i := range header {
				header[i] = strings.TrimSpace(strings.TrimPrefix(header[i], "\ufeff"))
			}
			for {
				rec, err := r.Read()
				if err == io.EOF {
					return
				}
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					if !yield(importLine{ImportInput: core.ImportInput{Line: pe.StartLine}, parseErr: errors.New("csv_syntax")}, nil) {
						return
					}
					continue
				} else if err != nil {
					yield(importLine{}, err)
					return
				}
				// Field positions exist only for a row that was read whole.
				line, _ := r.FieldPos(0)
				if len(rec) != len(header) {
					if !yield(importLine{ImportInput: core.ImportInput{Line: line}, parseErr: errors.New("column_count")}, nil) {
						return
					}
					continue
				}
				fields := map[string]string{}
				for i, v := range rec {
					if v != "" {
						fields[header[i]] = v
					}
				}
				if !yield(importLine{ImportInput: core.ImportInput{Line: line, Subject: custos.NewSubject{Fields: fields, Provenance: prov}}}, nil) {
					return
				}
			}
		case "jsonl":
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<16), 1<<20)
			line := 0
			for sc.Scan() {
				line++
				text := strings.TrimSpace(sc.Text())
				if text == "" {
					continue
				}
				var fields map[string]string
				if err := json.Unmarshal([]byte(text), &fields); err != nil {
					if !yield(importLine{ImportInput: core.ImportInput{Line: line}, parseErr: errors.New("json_object_of_strings")}, nil) {
						return
					}
					continue
				}
				if !yield(importLine{ImportInput: core.ImportInput{Line: line, Subject: custos.NewSubject{Fields: fields, Provenance: prov}}}, nil) {
					return
				}
			}
			if err := sc.Err(); err != nil {
				yield(importLine{}, fmt.Errorf("%s: line %d: %w", path, line+1, err))
			}
		}
	}, nil
}

// progress draws a one-line progress bar on a terminal-like writer.
type progress struct {
	w     io.Writer
	total int
	quiet bool
	start time.Time
	drawn bool
}

func newProgress(w io.Writer, total int, quiet bool) *progress {
	return &progress{w: w, total: max(total, 1), quiet: quiet, start: time.Now()}
}

func (p *progress) set(line int, counts map[string]int) {
	if p.quiet {
		return
	}
	frac := min(float64(line)/float64(p.total), 1)
	const width = 30
	n := int(frac * width)
	rate := float64(counts[custos.ImportStored]+counts[custos.ImportRejected]+counts[custos.ImportDuplicate]+counts[custos.ImportAlready]) / max(time.Since(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  line %d/%d  stored %d  rejected %d  duplicate %d  already %d  %.0f rows/s ",
		strings.Repeat("=", n), strings.Repeat(" ", width-n), frac*100, line, p.total,
		counts[custos.ImportStored], counts[custos.ImportRejected], counts[custos.ImportDuplicate], counts[custos.ImportAlready], rate)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// busyRetries is how often a batch refused because the server was busy
// (EUNAVAILABLE: it waited for the store's writer until its request's
// time was up, and nothing of it was written) is sent again, after the
// answer's wait.
const busyRetries = 5

// busyWait is the pause before such a batch is sent again.
var busyWait = 5 * time.Second

// importBatch sends rows, again after a busy refusal (busyRetries).
func importBatch(ctx context.Context, client *custoshttp.Client, purposes []string, job string, rows []core.ImportInput) ([]*custos.ImportResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := client.ImportRows(ctx, purposes, job, rows)
		if custos.ErrorCode(err) != custos.EUNAVAILABLE || attempt == busyRetries {
			return res, err
		}
		t := time.NewTimer(busyWait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}
