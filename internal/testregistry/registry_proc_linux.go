package testregistry

import "syscall"

// registrySysProcAttr has the kernel kill a registry when the thread
// that started it exits, so that a test binary that dies (a panic, a
// timeout) leaves no registry running. Registry.start keeps that thread
// alive for as long as the registry runs.
func registrySysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
