package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childProc is custos serve running as a child process (for tests that
// must really kill it).
type childProc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	url            string
	done           chan struct{} // closed when the process has exited
	waitErr        error
}

// startChild starts `bin serve --addr 127.0.0.1:0 args…` with none of the
// machine's CUSTOS_* settings and the background jobs every jobInterval,
// and waits until it listens. It is killed at cleanup if still running.
func startChild(t *testing.T, bin, name, jobInterval string, args ...string) *childProc {
	t.Helper()
	p := &childProc{name: name, stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	p.cmd.Env = childEnv("CUSTOS_JOB_INTERVAL=" + jobInterval)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		out, changed := p.stdout.snapshot()
		if m := listeningRE.FindStringSubmatch(out); m != nil {
			p.url = m[1]
			return p
		}
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("%s exited before listening: %v\nstdout:\n%s\nstderr:\n%s", name, p.waitErr, p.stdout, p.stderr)
		case <-deadline.C:
			t.Fatalf("%s did not listen within %v\nstdout:\n%s\nstderr:\n%s", name, startTimeout, p.stdout, p.stderr)
		}
	}
}

// kill sends SIGKILL and checks the process died of it.
func (p *childProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
	var ee *exec.ExitError
	if !errors.As(p.waitErr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("%s did not die of SIGKILL: %v\nstderr:\n%s", p.name, p.waitErr, p.stderr)
	}
}

// terminate sends SIGTERM and checks for a clean, graceful stop.
func (p *childProc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(startTimeout):
		t.Fatalf("%s did not stop within %v of SIGTERM", p.name, startTimeout)
	}
	if p.waitErr != nil || !strings.Contains(p.stdout.String(), "custos stopped") {
		t.Errorf("%s at SIGTERM: %v\nstdout:\n%s\nstderr:\n%s", p.name, p.waitErr, p.stdout, p.stderr)
	}
}

// childEnv is the environment of child processes: the given settings and
// none of the machine's CUSTOS_* ones, so they cannot change a test.
func childEnv(set ...string) []string {
	env := set
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CUSTOS_") {
			env = append(env, kv)
		}
	}
	return env
}
