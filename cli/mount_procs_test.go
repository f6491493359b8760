package cli

import (
	"runtime"
	"testing"
)

// The mount runs with twice the default GOMAXPROCS, and puts the default
// back when it ends; a GOMAXPROCS the user set is left alone.
func TestMoreProcs(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)

	restore := moreProcs("")
	if got := runtime.GOMAXPROCS(0); got != 2*def {
		t.Errorf("GOMAXPROCS while mounted = %d, want %d (twice the default)", got, 2*def)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Errorf("GOMAXPROCS after the mount = %d, want the default %d", got, def)
	}

	runtime.GOMAXPROCS(3)
	restore = moreProcs("3")
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS=3 set by the user became %d", got)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS=3 set by the user became %d after the mount", got)
	}
}
