// Command cpusplit splits a CPU profile of a custos node under load
// (`custos bench -cpuprofile FILE`) by the part of the node that spent it:
// the handler and its phases, net/http's server around it, the SQLite
// writer's phases, the audit index's filer, the syncer's fsync, the
// checkpointer, the bench's own client, the collector and the scheduler.
// With the number of requests the profile covers it gives each part's CPU
// per request, the budget a read or a create is measured against
// (BENCHMARKS.md, thirty-sixth session).
//
// It is a module of its own, so that custos does not depend on
// github.com/google/pprof: from this directory, `go run . [-requests N |
// -rate R] PROFILE`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/pprof/profile"
)

func main() {
	requests := flag.Float64("requests", 0, "requests the profile covers; prints each part's µs a request")
	rate := flag.Float64("rate", 0, "requests a second over the profile's whole duration (as the bench's req/s); instead of -requests")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: cpusplit [-requests N | -rate R] PROFILE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || (*requests > 0 && *rate > 0) || *requests < 0 || *rate < 0 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpusplit:", err)
		os.Exit(1)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpusplit: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	s, err := Classify(p, Node)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpusplit: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	n := *requests
	if *rate > 0 {
		n = *rate * s.Duration.Seconds()
	}
	s.Write(os.Stdout, n)
}
