//go:build !linux

package gcheadroom

// totalRAM is the machine's memory in bytes; 0: unknown here.
func totalRAM() uint64 { return 0 }
