// Command tracesum summarises an execution trace (runtime/trace, as
// `custos bench -trace FILE` writes one): where the goroutines spent their
// time, which system calls kept their Go processor (P) from running
// anything else, and how long goroutines waited for a P.
//
// It is a module of its own, so that custos does not depend on
// golang.org/x/exp: from this directory, `go run . FILE`.
// BENCHMARKS.md, thirty-fifth session, reads one.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	top := flag.Int("top", 25, "longest entries to print in each list (0: all)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: tracesum [-top N] TRACE")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "tracesum:", err)
		os.Exit(1)
	}
	defer f.Close()
	s, err := Summarize(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tracesum: %s: %v\n", flag.Arg(0), err)
		os.Exit(1)
	}
	s.Write(os.Stdout, *top)
}
