//go:build !linux

package sqlite

// takeProcSlot takes no process slot where open-file-description locks do
// not exist: the process's waiting marks name no owner, and a dead
// writer's mark is ignored once it is stale (turns.go).
func (g *sharedGen) takeProcSlot() int { return -1 }

// procAlive is never asked without process slots.
func (g *sharedGen) procAlive(int) bool { return true }
