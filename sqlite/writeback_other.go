//go:build !linux

package sqlite

import "os"

// startWriteback does nothing where sync_file_range(2) does not exist:
// the writer's WAL restart then writes the checkpoints' copies itself, as
// SQLite alone would (checkpoint.go).
func startWriteback(*os.File) error { return nil }
