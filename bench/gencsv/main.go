// Command gencsv writes N synthetic customers from the seed generator as
// a CSV file for `custos import` benchmarks (BENCHMARKS.md, "Import of
// 1,000,000 customers"; `custos bench -bulk` writes the same file
// itself). The values are made up; see package seed.
//
//	go run ./bench/gencsv -n 1000000 -seed 1 > customers-1m.csv
package main

import (
	"flag"
	"log"
	"os"

	"custos/seed"
)

func main() {
	n := flag.Int("n", 1000, "customers")
	s := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := seed.WriteCSV(os.Stdout, *n, *s); err != nil {
		log.Fatal(err)
	}
}
