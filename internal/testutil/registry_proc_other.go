//go:build !linux

package testutil

import "syscall"

// registrySysProcAttr has nothing to add outside Linux.
func registrySysProcAttr() *syscall.SysProcAttr { return nil }
