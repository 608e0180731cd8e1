package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"custos/keys"
)

func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: custos keys rotate|rewrap|status|retire [flags]")
		return errUsage
	}
	sub, args := args[0], args[1:]
	fs, cf := newFlags("keys "+sub, stderr)
	ver := fs.Int("version", 0, "master key version to retire (keys retire)")
	rewrap := fs.Bool("rewrap", true, "keys rotate: re-wrap every data key now (with several nodes: rotate -rewrap=false, copy the key file to every node, wait 10 s, then keys rewrap)")
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	n, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), false)
	if err != nil {
		return err
	}
	defer n.Close()
	_, path, err := loadKeyring(cfg, getenv, false)
	if err != nil {
		return err
	}
	switch sub {
	case "status":
		return keysStatus(ctx, n, stdout)
	case "rotate":
		if path == "" {
			return fmt.Errorf("the master keys come from CUSTOS_MASTER_KEYS; rotate them in a key file (CUSTOS_MASTER_KEYS_FILE) instead")
		}
		next, err := n.ring.Rotate(nil)
		if err != nil {
			return err
		}
		// Save first: if re-wrapping stops half-way, both versions are in
		// the file and every data key can still be unwrapped; running
		// custos keys rewrap finishes the job.
		if err := next.Save(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "master key v%d created\n", next.CurrentVersion())
		if !*rewrap {
			fmt.Fprintln(stdout, "data keys not re-wrapped yet: copy the key file to every node, wait 10 s, then run custos keys rewrap")
			return keysStatus(ctx, n, stdout)
		}
		return rewrapAll(ctx, n, next, stdout, stderr)
	case "rewrap":
		return rewrapAll(ctx, n, n.ring, stdout, stderr)
	case "retire":
		if *ver <= 0 {
			return fmt.Errorf("keys retire: -version N is required")
		}
		use, err := n.svc.KeyUsage(ctx)
		if err != nil {
			return err
		}
		if use[*ver] > 0 {
			return fmt.Errorf("master key v%d still wraps %d data keys; run custos keys rotate first", *ver, use[*ver])
		}
		next, err := n.ring.Retire(*ver)
		if err != nil {
			return err
		}
		if err := next.Save(path); err != nil {
			return err
		}
		if err := n.svc.RecordRetire(ctx, *ver); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "master key v%d retired and removed from %s\n", *ver, path)
		return nil
	}
	fmt.Fprintf(stderr, "custos keys: unknown subcommand %q\n", sub)
	return errUsage
}

// rewrapAll re-wraps every data key under ring's current master key.
func rewrapAll(ctx context.Context, n *node, ring *keys.Keyring, stdout, stderr io.Writer) error {
	fmt.Fprintln(stdout, "re-wrapping data keys…")
	done, err := n.svc.Rewrap(ctx, ring, func(done int) { fmt.Fprintf(stderr, "\rre-wrapped %d data keys", done) })
	fmt.Fprintln(stderr)
	if err != nil {
		return fmt.Errorf("re-wrap stopped after %d data keys (run custos keys rewrap to finish): %w", done, err)
	}
	fmt.Fprintf(stdout, "re-wrapped %d data keys under master key v%d; no data was re-encrypted\n", done, ring.CurrentVersion())
	return keysStatus(ctx, n, stdout)
}

func keysStatus(ctx context.Context, n *node, w io.Writer) error {
	use, err := n.svc.KeyUsage(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "version  created                    state     data keys")
	vs := n.svc.Keyring().Versions()
	slices.SortFunc(vs, func(a, b keys.KeyVersionInfo) int { return a.Version - b.Version })
	for _, v := range vs {
		state := "active"
		if v.Retired {
			state = "retired"
		} else if v.Current {
			state = "current"
		}
		fmt.Fprintf(w, "v%-7d %-26s %-9s %d\n", v.Version, v.Created.Format("2006-01-02 15:04:05 MST"), state, use[v.Version])
	}
	return nil
}
