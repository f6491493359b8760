package ui

import (
	"testing"

	"github.com/cofferhq/coffer/snapshot"
)

func TestModeString(t *testing.T) {
	for _, tt := range []struct {
		typ  snapshot.NodeType
		mode uint32
		want string
	}{
		{snapshot.TypeFile, 0o644, "-rw-r--r--"},
		{snapshot.TypeFile, 0o4755, "-rwsr-xr-x"},
		{snapshot.TypeFile, 0o4644, "-rwSr--r--"},
		{snapshot.TypeDir, 0o3775, "drwxrwsr-t"},
		{snapshot.TypeDir, 0o1770, "drwxrwx--T"},
		{snapshot.TypeSymlink, 0o777, "lrwxrwxrwx"},
		{snapshot.TypeFifo, 0o600, "prw-------"},
		{snapshot.TypeSocket, 0o755, "srwxr-xr-x"},
		{snapshot.TypeCharDev, 0o666, "crw-rw-rw-"},
		{snapshot.TypeBlkDev, 0o660, "brw-rw----"},
	} {
		if got := modeString(&snapshot.Node{Type: tt.typ, Mode: tt.mode}); got != tt.want {
			t.Errorf("%s %o: %q, want %q", tt.typ, tt.mode, got, tt.want)
		}
	}
}
