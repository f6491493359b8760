package bytesize

import "testing"

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{-1, "0 B"},
		{0, "0 B"},
		{1023, "1023 B"},
		{1536, "1.5 KiB"},
		{216 << 20, "216 MiB"},
		{3 << 30, "3.0 GiB"},
	} {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
