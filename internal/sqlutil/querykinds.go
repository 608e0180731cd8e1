package sqlutil

import "sync"

// QueryKinds remembers a yes-or-no answer about each statement text, so
// that the regular expressions behind it run once per text. Its zero
// value is empty.
type QueryKinds struct{ m sync.Map } // query → bool

// Of returns kind(query), computed once per query. Texts of 4 KiB or more
// (batch statements, whose text varies with their row count) are not kept.
func (k *QueryKinds) Of(query string, kind func(string) bool) bool {
	if v, ok := k.m.Load(query); ok {
		return v.(bool)
	}
	r := kind(query)
	if len(query) < 4096 {
		k.m.Store(query, r)
	}
	return r
}
