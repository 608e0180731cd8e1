package sqlutil

import "time"

// OptMicros converts an optional time to Unix microseconds, with the zero
// time as 0 (columns such as restricted_until, where 0 means "unset").
func OptMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// OptTime is the inverse of OptMicros: 0 gives the zero time.Time.
func OptTime(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return Time(us)
}
