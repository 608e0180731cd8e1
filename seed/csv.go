package seed

import (
	"bufio"
	"encoding/csv"
	"io"
	"math/rand/v2"
)

// CSVColumns are the fields WriteCSV writes, in order: the retail
// catalog's fields that custos import takes from a customer file.
var CSVColumns = []string{"name", "gender", "birth_date", "nationality", "id_number", "mobile", "email", "address",
	"postal_code", "member_no", "username", "bank_card"}

// WriteCSV writes a header and n synthetic customers drawn with seedValue
// as CSV, the file custos import reads (bench/gencsv, custos bench
// -bulk). The same seedValue gives the same file. The values are made up.
func WriteCSV(w io.Writer, n int, seedValue uint64) error {
	gen := New(rand.New(rand.NewPCG(seedValue, 0x637573746f73)))
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVColumns); err != nil {
		return err
	}
	rec := make([]string, len(CSVColumns))
	for range n {
		f := gen.Subject().Fields
		for i, c := range CSVColumns {
			rec[i] = f[c]
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}
