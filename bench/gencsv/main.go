// Command gencsv writes N synthetic customers from the seed generator as
// a CSV file for `custos import` benchmarks (BENCHMARKS.md, "Import of
// 1,000,000 customers"). The values are made up; see package seed.
//
//	go run ./bench/gencsv -n 1000000 -seed 1 > customers-1m.csv
package main

import (
	"bufio"
	"encoding/csv"
	"flag"
	"log"
	"math/rand/v2"
	"os"

	"custos/seed"
)

func main() {
	n := flag.Int("n", 1000, "customers")
	s := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	cols := []string{"name", "gender", "birth_date", "nationality", "id_number", "mobile", "email", "address",
		"postal_code", "member_no", "username", "bank_card"}
	gen := seed.New(rand.New(rand.NewPCG(*s, 0x637573746f73)))
	bw := bufio.NewWriterSize(os.Stdout, 1<<20)
	w := csv.NewWriter(bw)
	rec := make([]string, len(cols))
	if err := w.Write(cols); err != nil {
		log.Fatal(err)
	}
	for range *n {
		f := gen.Subject().Fields
		for i, c := range cols {
			rec[i] = f[c]
		}
		if err := w.Write(rec); err != nil {
			log.Fatal(err)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		log.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		log.Fatal(err)
	}
}
