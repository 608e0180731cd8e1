// Package promtext writes counters in Prometheus' text format, for the
// /metrics series of the stores and the service.
package promtext

import (
	"fmt"
	"io"
)

// Counter is one counter of a /metrics series: its name, help
// text and value, formatted.
type Counter struct {
	Name, Help, Value string
}

// WriteCounters appends counters to w in Prometheus' text format.
func WriteCounters(w io.Writer, counters []Counter) {
	for _, c := range counters {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %s\n", c.Name, c.Help, c.Name, c.Name, c.Value)
	}
}
