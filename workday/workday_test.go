package workday_test

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/workday"
)

func day(s string) time.Time {
	t, err := time.ParseInLocation(time.DateOnly, s, workday.Shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

func ymd(t time.Time) string { return t.In(workday.Shanghai).Format(time.DateOnly) }

// TestAddWorkingDays checks R7 deadlines over the 2026 notice: 调休
// weekends count, holiday weeks do not, and the start day never counts.
func TestAddWorkingDays(t *testing.T) {
	c := workday.Default()
	tests := []struct {
		name  string
		start string
		n     int
		want  string
	}{
		{name: "ordinary week", start: "2026-03-02", n: 5, want: "2026-03-09"},
		{name: "start day not counted, weekend skipped", start: "2026-03-06", n: 1, want: "2026-03-09"},
		{name: "tiaoxiu Saturday counts (Feb 14)", start: "2026-02-13", n: 1, want: "2026-02-14"},
		{name: "tiaoxiu Sunday counts (Jan 4)", start: "2026-01-03", n: 1, want: "2026-01-04"},
		{name: "Spring Festival 15 days", start: "2026-02-13", n: 15, want: "2026-03-12"},
		{name: "received during Spring Festival", start: "2026-02-16", n: 1, want: "2026-02-24"},
		{name: "National Day 15 days", start: "2026-09-18", n: 15, want: "2026-10-15"},
		{name: "received on a tiaoxiu Sunday (Sep 20)", start: "2026-09-20", n: 4, want: "2026-09-24"},
		{name: "Labour Day and May 9 Saturday", start: "2026-04-30", n: 3, want: "2026-05-08"},
		{name: "n = 0 is start's own day", start: "2026-02-15", n: 0, want: "2026-02-15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.AddWorkingDays(day(tt.start).Add(15*time.Hour), tt.n)
			if ymd(got) != tt.want {
				t.Errorf("AddWorkingDays(%s, %d) = %s, want %s", tt.start, tt.n, ymd(got), tt.want)
			}
			if h, m, s := got.In(workday.Shanghai).Clock(); h+m+s != 0 {
				t.Errorf("got %v, want 00:00 Asia/Shanghai", got)
			}
			if tt.n > 0 && !c.IsWorkingDay(got) {
				t.Errorf("%s is not a working day", ymd(got))
			}
		})
	}
}

// TestShanghaiDay: the day is the Asia/Shanghai day, whatever the zone of
// the time given. 2026-02-13 17:00 UTC is already 14 Feb (a 调休 Saturday)
// in Shanghai, so the next working day is after Spring Festival.
func TestShanghaiDay(t *testing.T) {
	c := workday.Default()
	start := time.Date(2026, 2, 13, 17, 0, 0, 0, time.UTC)
	if got := ymd(c.AddWorkingDays(start, 1)); got != "2026-02-24" {
		t.Errorf("got %s, want 2026-02-24", got)
	}
	if !c.IsWorkingDay(start) {
		t.Error("14 Feb 2026 (调休 Saturday) should be a working day")
	}
	if c.IsWorkingDay(time.Date(2026, 2, 13, 16, 30, 0, 0, time.UTC).Add(24 * time.Hour)) {
		t.Error("15 Feb 2026 (Spring Festival) should be a day off")
	}
	dl := c.Deadline(time.Date(2026, 9, 18, 10, 0, 0, 0, workday.Shanghai), 15)
	if want := time.Date(2026, 10, 16, 0, 0, 0, 0, workday.Shanghai); !dl.Equal(want) {
		t.Errorf("Deadline = %v, want %v (end of 15 Oct)", dl, want)
	}
}

func TestDayDescription(t *testing.T) {
	c := workday.Default()
	tests := []struct {
		date    string
		working bool
		name    string
	}{
		{"2026-02-14", true, "春节调休"},
		{"2026-02-18", false, "春节"},
		{"2026-10-10", true, "国庆节调休"},
		{"2026-10-07", false, "国庆节"},
		{"2026-03-07", false, ""}, // plain Saturday
		{"2026-03-09", true, ""},  // plain Monday
	}
	for _, tt := range tests {
		d := c.Day(day(tt.date))
		if d.Working != tt.working || d.Name != tt.name || d.Status != workday.Official {
			t.Errorf("Day(%s) = %+v, want working %v name %q official", tt.date, d, tt.working, tt.name)
		}
	}
}

// TestShippedCalendar checks the embedded data against the notice: every
// 2026 make-up working day is a weekend day, and the day counts of the
// holidays match the notice (3, 9, 3, 5, 3, 3, 7).
func TestShippedCalendar(t *testing.T) {
	c := workday.Default()
	for _, d := range []string{"2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"} {
		wd := day(d).Weekday()
		if wd != time.Saturday && wd != time.Sunday {
			t.Errorf("%s is a %s; make-up working days are weekend days", d, wd)
		}
		if !c.IsWorkingDay(day(d)) {
			t.Errorf("%s should be a working day", d)
		}
	}
	counts := map[string]int{}
	for d := day("2026-01-01"); d.Year() == 2026; d = d.AddDate(0, 0, 1) {
		if x := c.Day(d); !x.Working && x.Name != "" {
			counts[x.Name]++
		}
	}
	want := map[string]int{"元旦": 3, "春节": 9, "清明节": 3, "劳动节": 5, "端午节": 3, "中秋节": 3, "国庆节": 7}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s: %d days off, want %d", k, counts[k], v)
		}
	}
	// 2026 has 261 weekdays; 19 of them are days off (Jan 1–2, Feb 16–20
	// and 23, Apr 6, May 1, 4–5, Jun 19, Sep 25, Oct 1–2, 5–7) and 6
	// weekend days are worked: 261 − 19 + 6 = 248.
	if got := c.WorkingDaysBetween(day("2025-12-31"), day("2026-12-31")); got != 248 {
		t.Errorf("working days in 2026 = %d, want 248", got)
	}
	if c.Status(2026) != workday.Official || c.Status(2027) != workday.Provisional || c.Status(2030) != workday.Unknown {
		t.Errorf("statuses: 2026 %v, 2027 %v, 2030 %v", c.Status(2026), c.Status(2027), c.Status(2030))
	}
	if !strings.Contains(c.Source(2026), "2025-11-04") {
		t.Errorf("2026 source %q does not name the notice", c.Source(2026))
	}
}

// TestProvisionalAndUnknownYears: 2027 counts its statutory holidays but no
// 调休 days and warns once; an uncovered year falls back to Monday–Friday
// and warns "calendar out of date".
func TestProvisionalAndUnknownYears(t *testing.T) {
	var buf bytes.Buffer
	c := workday.Default()
	c.Logger = slog.New(slog.NewTextHandler(&buf, nil))

	// Spring Festival 2027 (statutory 5–8 Feb): from Thu 4 Feb, the next
	// working day is Tue 9 Feb.
	if got := ymd(c.AddWorkingDays(day("2027-02-04"), 1)); got != "2027-02-09" {
		t.Errorf("2027 Spring Festival: got %s, want 2027-02-09", got)
	}
	c.AddWorkingDays(day("2027-03-01"), 3)
	if n := strings.Count(buf.String(), "calendar provisional"); n != 1 {
		t.Errorf("provisional warnings = %d, want 1; log:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "year=2027") {
		t.Errorf("warning does not name the year: %s", buf.String())
	}
	// 2030: plain Monday–Friday.
	if got := ymd(c.AddWorkingDays(day("2030-10-01"), 1)); got != "2030-10-02" {
		t.Errorf("2030 fallback: got %s, want 2030-10-02", got)
	}
	if !strings.Contains(buf.String(), "calendar out of date") {
		t.Errorf("no out-of-date warning: %s", buf.String())
	}
	if got := c.Uncertain(day("2026-12-01"), day("2027-01-20")); len(got) != 1 || got[0] != 2027 {
		t.Errorf("Uncertain = %v, want [2027]", got)
	}
	if got := c.Uncertain(day("2026-03-01"), day("2026-04-01")); len(got) != 0 {
		t.Errorf("Uncertain = %v, want none", got)
	}
}

// TestCompanyCalendar: a company file extends a year (its own closing day
// and an extra working day) and replaces the provisional year.
func TestCompanyCalendar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "calendar.json")
	const file = `{"version": 1, "years": [
	 {"year": 2026, "source": "company", "holidays": [{"name": "年会", "from": "2026-12-31", "to": "2026-12-31"}],
	  "workdays": [{"name": "盘点", "date": "2026-03-07"}]},
	 {"year": 2027, "replace": true, "source": "notice 2027",
	  "holidays": [{"name": "春节", "from": "2027-02-05", "to": "2027-02-12"}],
	  "workdays": [{"name": "春节调休", "date": "2027-02-13"}]}]}`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := workday.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.IsWorkingDay(day("2026-12-31")) {
		t.Error("company closing day 2026-12-31 should be off")
	}
	if !c.IsWorkingDay(day("2026-03-07")) {
		t.Error("company working Saturday 2026-03-07 should be a working day")
	}
	if !c.IsWorkingDay(day("2026-02-14")) || c.IsWorkingDay(day("2026-02-16")) {
		t.Error("the shipped 2026 days must stay when a year is extended")
	}
	if c.Status(2027) != workday.Official {
		t.Errorf("replaced 2027: status %v, want official", c.Status(2027))
	}
	if got := ymd(c.AddWorkingDays(day("2027-02-04"), 1)); got != "2027-02-13" {
		t.Errorf("replaced 2027: got %s, want the 调休 Saturday 2027-02-13", got)
	}
	if c.IsWorkingDay(day("2027-05-01")) {
		t.Error("2027-05-01 is a Saturday: off (the replaced year no longer lists it, weekends stay off)")
	}
	// The shipped calendar is unchanged.
	if !workday.Default().IsWorkingDay(day("2026-12-31")) {
		t.Error("Default() changed by LoadFile")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, file, field, rule string
	}{
		{"not json", `{`, "calendar", "json"},
		{"unknown key", `{"version":1,"years":[],"extra":1}`, "calendar", "json"},
		{"version", `{"version":2,"years":[]}`, "version", "enum"},
		{"bad date", `{"version":1,"years":[{"year":2026,"holidays":[{"name":"x","from":"2026-13-01","to":"2026-12-01"}]}]}`, "years[0].holidays[0].from", "date"},
		{"reversed range", `{"version":1,"years":[{"year":2026,"holidays":[{"name":"x","from":"2026-03-05","to":"2026-03-01"}]}]}`, "years[0].holidays[0].to", "range"},
		{"far year", `{"version":1,"years":[{"year":2026,"workdays":[{"name":"x","date":"2029-03-07"}]}]}`, "years[0].workdays[0].date", "year"},
		{"both off and working", `{"version":1,"years":[{"year":2026,"holidays":[{"name":"x","from":"2026-03-07","to":"2026-03-08"}],"workdays":[{"name":"y","date":"2026-03-08"}]}]}`, "years[0].workdays[0].date", "conflict"},
		{"duplicate year", `{"version":1,"years":[{"year":2026},{"year":2026}]}`, "years[1].year", "unique"},
		{"year range", `{"version":1,"years":[{"year":20}]}`, "years[0].year", "range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := workday.Parse(strings.NewReader(tt.file))
			var e *custos.Error
			if custos.ErrorCode(err) != custos.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
			e = err.(*custos.Error)
			for _, v := range e.Violations {
				if v.Field == tt.field && v.Rule == tt.rule {
					return
				}
			}
			t.Errorf("violations %+v, want field %q rule %q", e.Violations, tt.field, tt.rule)
		})
	}
}

// TestDeadlineProperties: over random starts in 2026–2027 and n in 0..60,
// the n-th working day is a working day, strictly after start's day, the
// days between count back to n, and the result is monotone in n.
func TestDeadlineProperties(t *testing.T) {
	c := workday.Default()
	r := rand.New(rand.NewPCG(5, 2026))
	base := day("2026-01-01")
	for i := 0; i < 300; i++ {
		start := base.Add(time.Duration(r.Int64N(int64(730 * 24 * time.Hour))))
		prev := c.AddWorkingDays(start, 0)
		for n := 1; n <= 60; n++ {
			got := c.AddWorkingDays(start, n)
			if !c.IsWorkingDay(got) {
				t.Fatalf("AddWorkingDays(%v, %d) = %s: not a working day", start, n, ymd(got))
			}
			if !got.After(prev) {
				t.Fatalf("not monotone: n=%d gives %s, n=%d gave %s (start %v)", n, ymd(got), n-1, ymd(prev), start)
			}
			if k := c.WorkingDaysBetween(start, got); k != n {
				t.Fatalf("WorkingDaysBetween(%v, %s) = %d, want %d", start, ymd(got), k, n)
			}
			if k := c.WorkingDaysBetween(got, start); k != -n {
				t.Fatalf("reverse count = %d, want %d", k, -n)
			}
			prev = got
		}
	}
}

func BenchmarkAddWorkingDays15(b *testing.B) {
	c := workday.Default()
	start := day("2026-09-18")
	for b.Loop() {
		c.AddWorkingDays(start, 15)
	}
}
