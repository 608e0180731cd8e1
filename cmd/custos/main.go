// Command custos runs and operates the custos customer-data vault.
//
//	custos serve          run the server (creates the data directory on first start)
//	custos init           set up the data directory, keys and database, print the admin key
//	custos migrate        show or apply schema migrations
//	custos keys rotate    new master key version; re-wrap every data key
//	custos keys status    master key versions and how many data keys each wraps
//	custos keys retire    remove a master key version no data key uses any more
//	custos audit verify   recompute the audit hash chain and check signed checkpoints
//	custos retention      run the retention sweeper; list and verify destruction certificates
//	custos import FILE    import customers from CSV or JSON Lines through a server
//	custos seed           create synthetic customers for demos, tests and benchmarks
//	custos backup         write an encrypted, signed snapshot of a live store; backup verify checks one
//	custos restore FILE   restore a backup into an empty store and re-apply the shred ledgers
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

const usage = `custos — customer-data protection vault

usage: custos <command> [flags]

commands:
  serve         run the server (first start creates DIR, keys, database; prints "admin key: …")
  init          create the data directory, keys and database, print the admin key, and exit
  migrate       status|up: show or apply schema migrations (PostgreSQL nodes run them as a step)
  keys rotate   make a new master key version and re-wrap every data key
  keys status   show master key versions and the data keys each wraps
  keys retire   -version N: drop a master key version no data key uses
  audit verify  recompute the audit hash chain and check SQLite's audit index; exit 0 when whole, 1 naming the first bad event
  retention     run [--dry-run] | certificates | verify ID: retention sweep and destruction certificates
  backup        --out FILE: encrypted, signed snapshot of the live store (docs/backup.md)
  backup verify FILE: check a backup's signature and every chunk; exit 1 when broken
  restore FILE  restore a backup into an empty store, re-apply the shred ledgers, verify the audit chain
  import FILE   import customers (CSV with a header row, or JSON Lines) through a server
  seed          -subjects N: create synthetic Chinese customers
  bench         load-test an in-process server: throughput and latency per workload
  config        print the effective configuration (store credentials hidden)
  version       print the version

Run "custos <command> -h" for a command's flags.
`

// run is main without the process: testable end to end.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, rest, stdout, stderr, getenv)
	case "init":
		err = cmdInit(ctx, rest, stdout, stderr, getenv)
	case "keys":
		err = cmdKeys(ctx, rest, stdout, stderr, getenv)
	case "audit":
		err = cmdAudit(ctx, rest, stdout, stderr, getenv)
	case "backup":
		err = cmdBackup(ctx, rest, stdout, stderr, getenv)
	case "restore":
		err = cmdRestore(ctx, rest, stdout, stderr, getenv)
	case "import":
		err = cmdImport(ctx, rest, stdout, stderr, getenv)
	case "seed":
		err = cmdSeed(ctx, rest, stdout, stderr, getenv)
	case "config":
		err = cmdConfig(ctx, rest, stdout, stderr, getenv)
	case "migrate":
		err = cmdMigrate(ctx, rest, stdout, stderr, getenv)
	case "bench":
		err = cmdBench(ctx, rest, stdout, stderr, getenv)
	case "retention":
		err = cmdRetention(ctx, rest, stdout, stderr, getenv)
	case "version":
		fmt.Fprintln(stdout, "custos", version)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "custos: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(stderr, "custos:", ee.err)
			}
			return ee.code
		}
		if errors.Is(err, errUsage) {
			return 2
		}
		fmt.Fprintln(stderr, "custos:", err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

const version = "0.1.0"
