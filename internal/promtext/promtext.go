// Package promtext writes counters and gauges in Prometheus' text format,
// for the /metrics series of the stores, the service and the collector.
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
func WriteCounters(w io.Writer, counters []Counter) { write(w, "counter", counters) }

// WriteGauges appends gauges (values that go down as well as up) to w in
// Prometheus' text format.
func WriteGauges(w io.Writer, gauges []Counter) { write(w, "gauge", gauges) }

func write(w io.Writer, typ string, ms []Counter) {
	for _, c := range ms {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", c.Name, c.Help, c.Name, typ, c.Name, c.Value)
	}
}
