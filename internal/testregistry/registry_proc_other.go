//go:build !linux

package testregistry

import "syscall"

// registrySysProcAttr has nothing to add outside Linux.
func registrySysProcAttr() *syscall.SysProcAttr { return nil }
