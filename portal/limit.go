package portal

import (
	"sync"
	"time"
)

// Sign-in limits per client address, on top of the one-time code limits
// (which count only codes actually issued): at most SignInLimit sign-in and
// code attempts per SignInWindow, then 429 until the window ends. It stops
// a client from probing many numbers or codes quickly; the store-held code
// limits still apply across nodes.
const (
	SignInLimit  = 20
	SignInWindow = 10 * time.Minute
)

type window struct {
	start time.Time
	n     int
}

// limiter counts attempts per client address in fixed windows.
type limiter struct {
	mu sync.Mutex
	m  map[string]window
}

// allow counts an attempt by client and reports whether it is within the
// limit.
func (l *limiter) allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]window{}
	}
	if len(l.m) > 100_000 { // bound memory: forget old windows
		for k, w := range l.m {
			if now.Sub(w.start) >= SignInWindow {
				delete(l.m, k)
			}
		}
	}
	w := l.m[client]
	if now.Sub(w.start) >= SignInWindow {
		w = window{start: now}
	}
	w.n++
	l.m[client] = w
	return w.n <= SignInLimit
}
