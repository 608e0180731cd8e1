package http

import (
	"encoding/json"
	"slices"
	"time"

	"custos"
	"custos/internal/jsonstr"
)

// appendSubject appends the JSON encoding/json gives s (with a trailing
// newline, as json.Encoder writes it) without reflection: a subject is the
// answer to every read, and encoding its three maps by reflection cost
// more than deciding, decrypting and masking it together. ok is false
// for a subject this encoder does not cover (one carrying a consent
// receipt); the caller then uses encoding/json. TestAppendSubject and
// FuzzAppendSubject hold it byte for byte to encoding/json.
func appendSubject(b []byte, s *custos.Subject) (out []byte, ok bool) {
	if s == nil || s.ConsentReceipt != nil {
		return b, false
	}
	start, ok := len(b), true
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, string(s.ID))
	b = append(b, `,"fields":`...)
	if s.Fields == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONMap(b, s.Fields, jsonstr.Append)
	}
	if len(s.Decisions) > 0 {
		b = append(b, `,"decisions":`...)
		b = appendJSONMap(b, s.Decisions, func(b []byte, d custos.FieldDecision) []byte {
			b = append(b, `{"outcome":`...)
			b = jsonstr.Append(b, string(d.Outcome))
			b = append(b, `,"reason":`...)
			b = jsonstr.Append(b, d.Reason)
			return append(b, '}')
		})
	}
	if len(s.Provenance) > 0 {
		b = append(b, `,"provenance":`...)
		b = appendJSONMap(b, s.Provenance, func(b []byte, p custos.Provenance) []byte {
			b = append(b, `{"collector":`...)
			b = jsonstr.Append(b, p.Collector)
			b = append(b, `,"channel":`...)
			b = jsonstr.Append(b, p.Channel)
			if p.Location != "" {
				b = append(b, `,"location":`...)
				b = jsonstr.Append(b, p.Location)
			}
			b = append(b, `,"source":`...)
			b = jsonstr.Append(b, p.Source)
			if p.Plan != "" {
				b = append(b, `,"plan":`...)
				b = jsonstr.Append(b, p.Plan)
			}
			b = append(b, `,"time":`...)
			b = appendJSONTime(b, p.Time, &ok)
			return append(b, '}')
		})
	}
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, s.CreatedAt, &ok)
	b = append(b, `,"updated_at":`...)
	b = appendJSONTime(b, s.UpdatedAt, &ok)
	if !ok {
		// A time encoding/json refuses: let it report the error.
		return b[:start], false
	}
	return append(b, "}\n"...), true
}

// appendReadResponse appends the JSON encoding/json gives rs, as
// appendSubject does for one subject; ok is false when a subject or a
// problem is one this encoder does not cover (TestAppendReadResponse).
func appendReadResponse(b []byte, rs *ReadResponse) (out []byte, ok bool) {
	start := len(b)
	b = append(b, `{"results":`...)
	if rs.Results == nil {
		return append(b, "null}\n"...), true
	}
	b = append(b, '[')
	for i := range rs.Results {
		res := &rs.Results[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = jsonstr.Append(b, string(res.ID))
		if res.Subject != nil {
			b = append(b, `,"subject":`...)
			if b, ok = appendSubject(b, res.Subject); !ok {
				return b[:start], false
			}
			b = b[:len(b)-1] // appendSubject's newline
		}
		if res.Error != nil {
			pb, err := json.Marshal(res.Error)
			if err != nil {
				return b[:start], false
			}
			b = append(b, `,"error":`...)
			b = append(b, pb...)
		}
		b = append(b, '}')
	}
	return append(b, "]}\n"...), true
}

// appendJSONMap appends m as encoding/json does: keys sorted, each value
// appended by value.
func appendJSONMap[V any](b []byte, m map[string]V, value func([]byte, V) []byte) []byte {
	b = append(b, '{')
	var arr [32]string // a subject's fields fit: no allocation for the keys
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, k)
		b = append(b, ':')
		b = value(b, m[k])
	}
	return append(b, '}')
}

// appendJSONTime appends t as time.Time.MarshalJSON writes it, clearing
// ok if that refuses t.
func appendJSONTime(b []byte, t time.Time, ok *bool) []byte {
	// time.Time's MarshalJSON is its text form (RFC 3339 with
	// nanoseconds, an error outside years 0–9999) in quotes; appended in
	// place it allocates nothing.
	out, err := t.AppendText(append(b, '"'))
	if err != nil {
		*ok = false
		return b
	}
	return append(out, '"')
}
