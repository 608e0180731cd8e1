package gcheadroom

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
)

// MaxAuto is the largest headroom the default gives (Auto): the figure
// the forty-eighth session measured (BENCHMARKS.md).
const MaxAuto = 128 << 20

// autoShare is the part of the process's memory limit the default
// headroom may take: a sixteenth, so that a node in a 512 MiB container
// holds at most 32 MiB more than with Go's default collector.
const autoShare = 16

// Limit is the memory a process may use, and where that figure came from.
type Limit struct {
	Bytes  uint64
	Source string // "cgroup", "GOMEMLIMIT", "RAM"; "" when none was found
}

func (l Limit) String() string {
	if l.Bytes == 0 {
		return "no memory limit found"
	}
	return fmt.Sprintf("%s of %s", mib(l.Bytes), l.Source)
}

// mib formats a size in MiB, or in GiB from 10 GiB on.
func mib(b uint64) string {
	if b >= 10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

// Auto is the default headroom of a process that may use limit bytes: a
// sixteenth of it, at most MaxAuto; MaxAuto when limit is 0 (unknown);
// 0, Go's default collector, when a sixteenth is under 4 MiB, which Go's
// own minimum heap goal already gives.
func Auto(limit uint64) uint64 {
	if limit == 0 {
		return MaxAuto
	}
	if h := min(limit/autoShare, MaxAuto); h >= minLive {
		return h
	}
	return 0
}

// MemoryLimit returns the smallest of the limits that bound this
// process's memory: its cgroup's (cgroup v2's memory.max, v1's
// memory.limit_in_bytes, its ancestors' included), GOMEMLIMIT, and the
// machine's memory.
func MemoryLimit() Limit {
	var l Limit
	consider := func(b uint64, source string) {
		if b > 0 && (l.Bytes == 0 || b < l.Bytes) {
			l = Limit{Bytes: b, Source: source}
		}
	}
	consider(totalRAM(), "RAM")
	if v := debug.SetMemoryLimit(-1); v > 0 && v < math.MaxInt64 {
		consider(uint64(v), "GOMEMLIMIT")
	}
	consider(cgroupLimit(os.DirFS("/")), "cgroup")
	return l
}

// SoftLimit sets Go's soft memory limit to nine tenths of l when l is a
// cgroup's limit and GOMEMLIMIT is not set, so that near the limit the
// collector works harder rather than the kernel killing the process (Go
// does not read cgroup limits itself). It returns the limit it set, 0 if
// none.
func SoftLimit(l Limit) uint64 {
	if l.Source != "cgroup" || os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	v := l.Bytes / 10 * 9
	debug.SetMemoryLimit(int64(v))
	return v
}

// cgroupLimit returns the smallest memory limit set on this process's
// cgroups or their ancestors, read from fsys (the root directory); 0 when
// none is set or none can be read.
func cgroupLimit(fsys fs.FS) uint64 {
	var limit uint64
	for _, f := range limitFiles(fsys) {
		if b, err := fs.ReadFile(fsys, f); err == nil {
			if v := parseLimit(string(b)); v > 0 && (limit == 0 || v < limit) {
				limit = v
			}
		}
	}
	return limit
}

// LimitFiles returns the memory limit files MemoryLimit reads, as
// absolute paths: for each mounted cgroup hierarchy with the memory
// controller, this process's cgroup's file (v2's memory.max, v1's
// memory.limit_in_bytes) first, then its ancestors' up to the mount
// point. Nil when /proc tells nothing.
func LimitFiles() []string {
	files := limitFiles(os.DirFS("/"))
	for i, f := range files {
		files[i] = "/" + f
	}
	return files
}

// limitFiles is LimitFiles read from fsys (the root directory), its
// paths relative to it.
func limitFiles(fsys fs.FS) []string {
	groups, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return nil
	}
	mounts, err := fs.ReadFile(fsys, "proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var files []string
	for _, m := range cgroupMounts(string(mounts)) {
		p, ok := cgroupPath(string(groups), m.v2)
		if !ok {
			continue
		}
		rel, ok := strings.CutPrefix(p, m.root)
		if !ok {
			continue
		}
		file := "memory.limit_in_bytes"
		if m.v2 {
			file = "memory.max"
		}
		for dir := path.Join(m.point, rel); ; dir = path.Dir(dir) {
			files = append(files, strings.TrimPrefix(path.Join(dir, file), "/"))
			if dir == m.point || dir == "/" || dir == "." {
				break
			}
		}
	}
	return files
}

// parseLimit reads a cgroup memory limit file: "max" (v2) or a figure of
// 2^62 or more (v1's way of saying none) is 0, no limit.
func parseLimit(s string) uint64 {
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil || v >= 1<<62 {
		return 0
	}
	return v
}

// cgroupMount is a mounted cgroup hierarchy that holds the memory
// controller: v2's unified one, or v1's memory one.
type cgroupMount struct {
	root, point string
	v2          bool
}

// cgroupMounts finds the memory cgroup hierarchies in
// /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTIONS … - TYPE
// SOURCE SUPEROPTIONS".
func cgroupMounts(mountinfo string) []cgroupMount {
	var ms []cgroupMount
	for line := range strings.Lines(mountinfo) {
		before, after, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(before), strings.Fields(after)
		if !ok || len(f) < 5 || len(g) < 1 {
			continue
		}
		switch {
		case g[0] == "cgroup2":
			ms = append(ms, cgroupMount{root: f[3], point: f[4], v2: true})
		case g[0] == "cgroup" && len(g) >= 3 && slices.Contains(strings.Split(g[2], ","), "memory"):
			ms = append(ms, cgroupMount{root: f[3], point: f[4]})
		}
	}
	return ms
}

// cgroupPath finds this process's cgroup in /proc/self/cgroup
// ("ID:CONTROLLERS:PATH"): v2's line has ID 0 and no controllers.
func cgroupPath(groups string, v2 bool) (string, bool) {
	for line := range strings.Lines(groups) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		if v2 && f[0] == "0" && f[1] == "" || !v2 && slices.Contains(strings.Split(f[1], ","), "memory") {
			return f[2], true
		}
	}
	return "", false
}
