package workday_test

import (
	"bytes"
	"testing"
	"time"

	"custos"
	"custos/workday"
)

// FuzzParse: a calendar file never panics the parser; a file it accepts
// lays over the shipped calendar, and deadlines over it still end on a
// working day with the days counting back to n.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"years":[{"year":2026,"holidays":[{"name":"x","from":"2026-12-31","to":"2026-12-31"}],"workdays":[{"name":"y","date":"2026-03-07"}]}]}`))
	f.Add([]byte(`{"version":1,"years":[{"year":2027,"replace":true,"provisional":true,"holidays":[{"name":"春节","from":"2027-01-31","to":"2027-02-28"}]}]}`))
	f.Add([]byte(`{"version":1,"years":[{"year":2026,"holidays":[{"name":"x","from":"2026-03-07","to":"2026-03-01"}]}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"years":[{"year":1970},{"year":9999,"workdays":[{"name":"z","date":"9999-12-31"}]}]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := workday.Parse(bytes.NewReader(data))
		if err != nil {
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("error code %q, want EINVALID", custos.ErrorCode(err))
			}
			return
		}
		c, err := workday.Default().With(file)
		if err != nil {
			t.Fatalf("With after Parse: %v", err)
		}
		start := time.Date(2026, 12, 20, 10, 0, 0, 0, workday.Shanghai)
		for _, y := range c.Years() {
			if y >= 1971 && y <= 9998 {
				start = time.Date(y, 1, 15, 10, 0, 0, 0, workday.Shanghai)
				break
			}
		}
		got := c.AddWorkingDays(start, 20)
		if !c.IsWorkingDay(got) || c.WorkingDaysBetween(start, got) != 20 {
			t.Fatalf("AddWorkingDays(%v, 20) = %v: working %v, count %d", start, got, c.IsWorkingDay(got), c.WorkingDaysBetween(start, got))
		}
	})
}
