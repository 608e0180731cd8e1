package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// cmdConfig prints the effective configuration (after flags, environment
// and file) as JSON, with the store URL's credentials, the SMTP password and
// the gateway secret hidden. The master keys are never part of the config.
func cmdConfig(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, cf := newFlags("config", stderr)
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	cfg.Store = redactURL(cfg.Store)
	cfg.RightsConfig = cfg.RightsConfig.redacted()
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(b))
	return nil
}
