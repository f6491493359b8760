package repo

import (
	"os"
	"strconv"
	"strings"
)

// bootID identifies this boot of this machine.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// pidNamespace identifies this process's PID namespace: PIDs name
// processes only within one.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}

// procStart returns when process pid started (in clock ticks since boot),
// or "" if there is no such process. With the PID it names one process
// for the life of a boot: a PID reused later has another start time.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis. starttime is field 22.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(s[i+1:])
	const starttime = 22 - 3 // fields 1 and 2 come before; the list starts at field 3
	if len(fields) <= starttime {
		return ""
	}
	return fields[starttime]
}
