package gcheadroom

import (
	"runtime/debug"
	"testing"
	"testing/fstest"
)

func TestAuto(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ limit, want uint64 }{
		{0, MaxAuto},                   // no limit found
		{24 << 30, MaxAuto},            // a large machine: the cap
		{2 << 30, 128 * mib},           // a sixteenth is the cap
		{512 * mib, 32 * mib},          // a small container: a sixteenth
		{256 * mib, 16 * mib},          //
		{63 * mib, 0},                  // under 4 MiB: Go's default
		{64 * mib, 4 * mib},            // exactly Go's minimum goal
		{1 << 40, MaxAuto},             // a terabyte
		{MaxAuto * 16, MaxAuto},        // the boundary
		{MaxAuto*16 - 16, MaxAuto - 1}, // just under it
	} {
		if got := Auto(c.limit); got != c.want {
			t.Errorf("Auto(%d MiB) = %d bytes, want %d", c.limit/mib, got, c.want)
		}
	}
}

// v1 is how this CI machine mounts its cgroups; v2 how current systems do.
const (
	mountsV1 = `34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
`
	groupsV1 = "5:devices:/\n4:memory:/shop/custos\n1:cpu:/\n0::/\n"
	mountsV2 = `25 20 0:22 / /proc rw - proc proc rw
29 21 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
`
	groupsV2 = "0::/system.slice/custos.service\n"
)

func TestCgroupLimit(t *testing.T) {
	// files is a root with the given /proc/self files and the cgroup
	// files under sys/fs/cgroup, each given its content.
	files := func(mountinfo, groups string, cgroupFiles ...string) fstest.MapFS {
		fsys := fstest.MapFS{}
		if mountinfo != "" {
			fsys["proc/self/mountinfo"] = &fstest.MapFile{Data: []byte(mountinfo)}
			fsys["proc/self/cgroup"] = &fstest.MapFile{Data: []byte(groups)}
		}
		for i := 0; i+1 < len(cgroupFiles); i += 2 {
			fsys["sys/fs/cgroup/"+cgroupFiles[i]] = &fstest.MapFile{Data: []byte(cgroupFiles[i+1] + "\n")}
		}
		return fsys
	}
	const (
		service = "system.slice/custos.service/memory.max"
		slice   = "system.slice/memory.max"
		v1Group = "memory/shop/custos/memory.limit_in_bytes"
		v1None  = "9223372036854771712" // v1's "no limit"
	)
	for _, c := range []struct {
		name string
		fs   fstest.MapFS
		want uint64
	}{
		{"v2: the service's own limit", files(mountsV2, groupsV2, service, "536870912", slice, "max"), 512 << 20},
		{"v2: a parent's smaller limit binds", files(mountsV2, groupsV2, service, "max", slice, "268435456"), 256 << 20},
		{"v2: no limit anywhere", files(mountsV2, groupsV2, service, "max"), 0},
		{"v2: a container's namespace, its root the cgroup",
			files("29 21 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n", "0::/\n", "memory.max", "1073741824"), 1 << 30},
		{"v1: a limit", files(mountsV1, groupsV1, v1Group, "2147483648", "memory/memory.limit_in_bytes", v1None), 2 << 30},
		{"v1: unlimited, as on this machine", files(mountsV1, groupsV1, v1Group, v1None), 0},
		{"v1 mounted, the process in no memory group", files(mountsV1, "1:cpu:/\n", "memory/memory.limit_in_bytes", "1048576"), 0},
		{"no /proc", files("", ""), 0},
	} {
		if got := cgroupLimit(c.fs); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// TestMemoryLimit: on this machine some limit is found (its memory at
// least), GOMEMLIMIT lowers it, and the default headroom follows.
func TestMemoryLimit(t *testing.T) {
	l := MemoryLimit()
	if l.Bytes == 0 || l.Source == "" {
		t.Fatalf("MemoryLimit() = %v: no limit found on Linux, where the machine's memory is one", l)
	}
	old := debug.SetMemoryLimit(64 << 20)
	defer debug.SetMemoryLimit(old)
	if l := MemoryLimit(); l.Bytes != 64<<20 || l.Source != "GOMEMLIMIT" {
		t.Errorf("with a 64 MiB GOMEMLIMIT: %v", l)
	}
	if h := Auto(MemoryLimit().Bytes); h != 4<<20 {
		t.Errorf("headroom under a 64 MiB GOMEMLIMIT: %d, want 4 MiB", h)
	}
}

// TestSoftLimit: a cgroup's limit sets Go's soft limit to nine tenths of
// it; the machine's memory does not, nor does anything when GOMEMLIMIT is
// the operator's.
func TestSoftLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	if v := SoftLimit(Limit{Bytes: 24 << 30, Source: "RAM"}); v != 0 || debug.SetMemoryLimit(-1) != old {
		t.Errorf("the machine's memory set a soft limit: %d", v)
	}
	if v := SoftLimit(Limit{Bytes: 1000 << 20, Source: "cgroup"}); v != 900<<20 || debug.SetMemoryLimit(-1) != 900<<20 {
		t.Errorf("a 1000 MiB cgroup: soft limit %d, Go's %d, want 900 MiB", v, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(old)
	t.Setenv("GOMEMLIMIT", "2GiB")
	if v := SoftLimit(Limit{Bytes: 1000 << 20, Source: "cgroup"}); v != 0 || debug.SetMemoryLimit(-1) != old {
		t.Errorf("with GOMEMLIMIT set: soft limit %d", v)
	}
}
