package transport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewCAFile(t *testing.T) {
	if _, err := New(""); err != nil {
		t.Fatalf("New without a CA file: %v", err)
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing.pem")); err == nil || !strings.Contains(err.Error(), "reading CA file") {
		t.Errorf("New with a missing CA file = %v, want an error reading it", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(notPEM); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("New with a file that is no PEM = %v, want an error saying so", err)
	}
	tr, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify || tr.TLSClientConfig.RootCAs == nil {
		t.Errorf("TLS config %+v: want verification against a root pool", tr.TLSClientConfig)
	}
}
