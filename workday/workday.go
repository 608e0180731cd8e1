// Package workday is custos's working-day calendar for the deadlines of
// customer requests (R7): "15 working days" counts days that are working
// days in mainland China, where the State Council's yearly holiday notice
// (放假调休) makes some weekdays days off and some weekend days working
// days (调休上班).
//
// The shipped calendar (china.json, embedded) holds 2026 from the State
// Council notice of 2025-11-04 and 2027 as provisional: the statutory
// holidays only, because the 2027 notice was not available when it was
// built. A company replaces or extends it with its own file (see File).
// For a year the calendar does not cover, Monday–Friday are working days
// and a "calendar out of date" warning is logged; a day in a provisional
// year logs a "calendar provisional" warning. Neither guesses 调休 days.
//
// All days are calendar days in Asia/Shanghai, whatever the location of
// the times passed in. Counting follows Civil Code Art. 201: the day a
// period starts on is not counted; counting begins the next day.
//
// The package imports only the standard library and the custos root
// package (for its errors).
package workday

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"custos"
)

// Shanghai is the time zone in which days are counted.
var Shanghai = loadShanghai()

func loadShanghai() *time.Location {
	if loc, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return loc
	}
	// Without a zone database: China has kept UTC+8 without daylight
	// saving since 1991, so a fixed zone gives the same days.
	return time.FixedZone("CST", 8*60*60)
}

// Status is how much the calendar knows about a year.
type Status int

const (
	// Unknown: the calendar does not cover the year; Monday–Friday are
	// taken as working days and a "calendar out of date" warning is logged.
	Unknown Status = iota
	// Official: the year follows a published holiday notice.
	Official
	// Provisional: statutory holidays only; the notice's 调休 days are not
	// known yet. A "calendar provisional" warning is logged when used.
	Provisional
)

func (s Status) String() string {
	switch s {
	case Official:
		return "official"
	case Provisional:
		return "provisional"
	}
	return "unknown"
}

// File is a calendar file (JSON). Every date is "YYYY-MM-DD" in
// Asia/Shanghai.
//
//	{"version": 1, "years": [{"year": 2026, "source": "…",
//	  "holidays": [{"name": "春节", "from": "2026-02-15", "to": "2026-02-23"}],
//	  "workdays": [{"name": "春节调休", "date": "2026-02-14"}]}]}
//
// Laid over another calendar (Calendar.With), a year that the base does not
// have, or that sets "replace": true, is taken as given; any other year is
// merged day by day: the file's holidays and workdays win over the base's
// for the same date (so a company can add its own closing days or working
// days), and the year stays provisional if either says so.
type File struct {
	Version int    `json:"version"`
	Comment string `json:"comment,omitempty"`
	Years   []Year `json:"years"`
}

// Year is one year of a calendar file.
type Year struct {
	Year        int    `json:"year"`
	Source      string `json:"source,omitempty"`      // the notice it follows
	Provisional bool   `json:"provisional,omitempty"` // 调休 days not known yet
	Replace     bool   `json:"replace,omitempty"`     // replace the base year instead of merging
	// Holidays are days off, even on weekdays, as inclusive ranges.
	Holidays []Holiday `json:"holidays"`
	// Workdays are working days, even on weekends (调休上班).
	Workdays []Workday `json:"workdays"`
}

// Holiday is a range of days off, From and To inclusive.
type Holiday struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Workday is a weekend day that is a working day.
type Workday struct {
	Name string `json:"name"`
	Date string `json:"date"`
}

// Day describes one calendar day.
type Day struct {
	Date    time.Time // 00:00 in Asia/Shanghai
	Working bool
	Name    string // the holiday or 调休 it belongs to; "" for an ordinary day
	Status  Status // what the calendar knows about the day's year
}

// civil is a calendar date: midnight UTC of that day, so that adding days
// is plain arithmetic whatever the zone does.
type civil struct{ t time.Time }

func civilOf(t time.Time) civil {
	y, m, d := t.In(Shanghai).Date()
	return civil{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

func (c civil) next() civil         { return civil{c.t.AddDate(0, 0, 1)} }
func (c civil) year() int           { return c.t.Year() }
func (c civil) before(o civil) bool { return c.t.Before(o.t) }
func (c civil) local() time.Time {
	y, m, d := c.t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, Shanghai)
}

// entry is a listed day: a day off or a working day.
type entry struct {
	working bool
	name    string
}

type yearData struct {
	status Status
	source string
	days   map[civil]entry
}

// Calendar answers which days are working days. It is immutable and safe
// for concurrent use; Logger may be set before first use.
type Calendar struct {
	years map[int]*yearData
	// Logger receives the out-of-date and provisional warnings (each once
	// per year and calendar). Nil discards them.
	Logger *slog.Logger
	warned sync.Map // int year → struct{}
}

//go:embed china.json
var chinaJSON []byte

// Default returns the shipped mainland China calendar (2026 official,
// 2027 provisional). It panics if the embedded file is broken, which a
// test rules out.
func Default() *Calendar {
	f, err := Parse(bytes.NewReader(chinaJSON))
	if err != nil {
		panic("workday: embedded calendar: " + err.Error())
	}
	c, err := (&Calendar{years: map[int]*yearData{}}).With(f)
	if err != nil {
		panic("workday: embedded calendar: " + err.Error())
	}
	return c
}

// LoadFile returns the shipped calendar with the calendar file at path laid
// over it (see File). Errors are EINVALID naming the bad entry.
func LoadFile(path string) (*Calendar, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINVALID, Message: "Calendar file cannot be read.", Err: err}
	}
	defer fh.Close()
	f, err := Parse(fh)
	if err != nil {
		return nil, err
	}
	return Default().With(f)
}

// Parse reads and checks a calendar file. It returns EINVALID with one
// violation per bad entry, the field named by its path
// ("years[0].holidays[1].from").
func Parse(r io.Reader) (*File, error) {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, &custos.Error{Code: custos.EINVALID, Message: "Calendar file is not valid JSON for a calendar.",
			Violations: []custos.Violation{{Field: "calendar", Rule: "json", Detail: jsonDetail(err)}}, Err: err}
	}
	var vs []custos.Violation
	bad := func(field, rule, detail string) {
		vs = append(vs, custos.Violation{Field: field, Rule: rule, Detail: detail})
	}
	if f.Version != 1 {
		bad("version", "enum", "want 1")
	}
	seenYear := map[int]bool{}
	for i, y := range f.Years {
		p := fmt.Sprintf("years[%d]", i)
		if y.Year < 1970 || y.Year > 9999 {
			bad(p+".year", "range", "1970–9999")
			continue
		}
		if seenYear[y.Year] {
			bad(p+".year", "unique", "each year once")
		}
		seenYear[y.Year] = true
		listed := map[civil]string{}
		for j, h := range y.Holidays {
			hp := fmt.Sprintf("%s.holidays[%d]", p, j)
			from, ok1 := parseDate(h.From)
			to, ok2 := parseDate(h.To)
			if !ok1 {
				bad(hp+".from", "date", "YYYY-MM-DD")
			}
			if !ok2 {
				bad(hp+".to", "date", "YYYY-MM-DD")
			}
			if !ok1 || !ok2 {
				continue
			}
			if to.before(from) || to.t.Sub(from.t) > 31*24*time.Hour {
				bad(hp+".to", "range", "on or after from, at most 31 days later")
				continue
			}
			if !nearYear(from, y.Year) || !nearYear(to, y.Year) {
				bad(hp, "year", "dates within the year (a range may begin in the year before or end in the year after)")
				continue
			}
			for d := from; !to.before(d); d = d.next() {
				listed[d] = hp
			}
		}
		for j, w := range y.Workdays {
			wp := fmt.Sprintf("%s.workdays[%d]", p, j)
			d, ok := parseDate(w.Date)
			if !ok {
				bad(wp+".date", "date", "YYYY-MM-DD")
				continue
			}
			if !nearYear(d, y.Year) {
				bad(wp+".date", "year", "a date within the year")
				continue
			}
			if other, dup := listed[d]; dup {
				bad(wp+".date", "conflict", "also listed as a day off in "+other)
			}
		}
	}
	if len(vs) > 0 {
		return nil, custos.Invalid("Calendar file has errors.", vs...)
	}
	return &f, nil
}

// jsonDetail describes a JSON decoding error without echoing input.
func jsonDetail(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("wrong type for %s", te.Field)
	}
	return "cannot decode"
}

func parseDate(s string) (civil, bool) {
	t, err := time.ParseInLocation(time.DateOnly, s, time.UTC)
	if err != nil {
		return civil{}, false
	}
	return civil{t}, true
}

func nearYear(d civil, y int) bool { return d.year() >= y-1 && d.year() <= y+1 }

// With returns a new calendar: c with f laid over it (see File). f must
// come from Parse.
func (c *Calendar) With(f *File) (*Calendar, error) {
	out := &Calendar{years: maps.Clone(c.years), Logger: c.Logger}
	for _, y := range f.Years {
		base := out.years[y.Year]
		nd := &yearData{status: Official, source: y.Source, days: map[civil]entry{}}
		if y.Provisional {
			nd.status = Provisional
		}
		if base != nil && !y.Replace {
			maps.Copy(nd.days, base.days)
			if base.status == Provisional {
				nd.status = Provisional
			}
			if nd.source == "" {
				nd.source = base.source
			} else if base.source != "" {
				nd.source = base.source + "; " + nd.source
			}
		}
		for _, h := range y.Holidays {
			from, ok1 := parseDate(h.From)
			to, ok2 := parseDate(h.To)
			if !ok1 || !ok2 {
				return nil, custos.Errorf(custos.EINVALID, "Calendar file has errors; check it with Parse.")
			}
			for d := from; !to.before(d); d = d.next() {
				nd.days[d] = entry{working: false, name: h.Name}
			}
		}
		for _, w := range y.Workdays {
			d, ok := parseDate(w.Date)
			if !ok {
				return nil, custos.Errorf(custos.EINVALID, "Calendar file has errors; check it with Parse.")
			}
			nd.days[d] = entry{working: true, name: w.Name}
		}
		out.years[y.Year] = nd
	}
	return out, nil
}

// Status returns what the calendar knows about year.
func (c *Calendar) Status(year int) Status {
	if y := c.years[year]; y != nil {
		return y.status
	}
	return Unknown
}

// Source returns the notice the year follows, or "".
func (c *Calendar) Source(year int) string {
	if y := c.years[year]; y != nil {
		return y.source
	}
	return ""
}

// Years lists the years the calendar covers, in order.
func (c *Calendar) Years() []int {
	return slices.Sorted(maps.Keys(c.years))
}

// lookup finds d's entry. A listed day may belong to the neighbouring
// year's notice (a New Year holiday starting on 31 December), so the
// years on either side are searched too.
func (c *Calendar) lookup(d civil) (entry, bool) {
	for _, y := range []int{d.year(), d.year() - 1, d.year() + 1} {
		if yd := c.years[y]; yd != nil {
			if e, ok := yd.days[d]; ok {
				return e, true
			}
		}
	}
	return entry{}, false
}

func (c *Calendar) day(d civil) Day {
	st := c.Status(d.year())
	c.warn(d.year(), st)
	out := Day{Date: d.local(), Status: st}
	if e, ok := c.lookup(d); ok {
		out.Working, out.Name = e.working, e.name
		return out
	}
	wd := d.t.Weekday()
	out.Working = wd != time.Saturday && wd != time.Sunday
	return out
}

// warn logs, once per year, that the calendar does not know the year's
// 调休 days. Nothing personal is logged: the year and the status only.
func (c *Calendar) warn(year int, st Status) {
	if st == Official || c.Logger == nil {
		return
	}
	if _, done := c.warned.LoadOrStore(year, struct{}{}); done {
		return
	}
	if st == Unknown {
		c.Logger.Warn("calendar out of date: no holiday calendar for the year; counting Monday to Friday as working days", "year", year)
	} else {
		c.Logger.Warn("calendar provisional: the year has statutory holidays only, without the State Council's 调休 days; deadlines may be off by days", "year", year)
	}
}

// Day describes the Asia/Shanghai calendar day of t.
func (c *Calendar) Day(t time.Time) Day { return c.day(civilOf(t)) }

// IsWorkingDay reports whether the Asia/Shanghai calendar day of t is a
// working day: a listed 调休 working day, or a weekday that is not a
// listed day off.
func (c *Calendar) IsWorkingDay(t time.Time) bool { return c.day(civilOf(t)).Working }

// AddWorkingDays returns the day on which a period of n working days that
// starts at start ends: the n-th working day after start's own day (which
// is not counted, whether or not it is a working day — Civil Code Art.
// 201), as 00:00 of that day in Asia/Shanghai. A request received at any
// time of day d with a 15-working-day deadline is due by the end of
// AddWorkingDays(d, 15); see Deadline for that instant. For n <= 0 it
// returns 00:00 of start's own day.
func (c *Calendar) AddWorkingDays(start time.Time, n int) time.Time {
	d := civilOf(start)
	for n > 0 {
		d = d.next()
		if c.day(d).Working {
			n--
		}
	}
	return d.local()
}

// Deadline returns the instant a period of n working days from start ends:
// the end of AddWorkingDays(start, n), i.e. 00:00 Asia/Shanghai of the next
// calendar day. A request is late when now is not before it.
func (c *Calendar) Deadline(start time.Time, n int) time.Time {
	return civilOf(c.AddWorkingDays(start, n)).next().local()
}

// WorkingDaysBetween counts the working days after from's day up to and
// including to's day (Asia/Shanghai), so that
// WorkingDaysBetween(s, AddWorkingDays(s, n)) == n for n >= 0. It is
// negative when to's day is before from's day.
func (c *Calendar) WorkingDaysBetween(from, to time.Time) int {
	a, b := civilOf(from), civilOf(to)
	sign := 1
	if b.before(a) {
		a, b, sign = b, a, -1
	}
	n := 0
	for d := a; d.before(b); {
		d = d.next()
		if c.day(d).Working {
			n++
		}
	}
	return sign * n
}

// Uncertain lists the years between from's and to's days (inclusive) that
// the calendar does not know officially, so a caller can flag a deadline
// computed over them.
func (c *Calendar) Uncertain(from, to time.Time) []int {
	a, b := civilOf(from).year(), civilOf(to).year()
	if b < a {
		a, b = b, a
	}
	var out []int
	for y := a; y <= b; y++ {
		if c.Status(y) != Official {
			out = append(out, y)
		}
	}
	return out
}
