package snapshot

import (
	"io/fs"
	"testing"
)

func TestNodeFileMode(t *testing.T) {
	for _, tt := range []struct {
		typ  NodeType
		mode uint32
		want fs.FileMode
	}{
		{TypeFile, 0o644, 0o644},
		{TypeFile, 0o4755, fs.ModeSetuid | 0o755},
		{TypeDir, 0o3775, fs.ModeDir | fs.ModeSetgid | fs.ModeSticky | 0o775},
		{TypeSymlink, 0o777, fs.ModeSymlink | 0o777},
		{TypeFifo, 0o600, fs.ModeNamedPipe | 0o600},
		{TypeSocket, 0o755, fs.ModeSocket | 0o755},
		{TypeCharDev, 0o666, fs.ModeDevice | fs.ModeCharDevice | 0o666},
		{TypeBlkDev, 0o660, fs.ModeDevice | 0o660},
	} {
		n := &Node{Type: tt.typ, Mode: tt.mode}
		if got := n.FileMode(); got != tt.want {
			t.Errorf("%s %o: FileMode %v, want %v", tt.typ, tt.mode, got, tt.want)
		}
	}
}
