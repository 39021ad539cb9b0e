package auth

import (
	"os"
	"strconv"
	"syscall"
)

// lowerThreadPriority makes the calling OS thread the last to get a CPU when
// others want one (nice 19). On Linux the niceness of PRIO_PROCESS with a
// thread id applies to that thread only.
func lowerThreadPriority() {
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19) //nolint:errcheck // best effort
}

// lowerProcessPriority gives every thread of the process nice 19: on Linux
// PRIO_PROCESS with 0 reaches only the calling thread, so each task listed in
// /proc/self/task is lowered, and threads started later inherit it from the
// thread that starts them.
func lowerProcessPriority() {
	syscall.Setpriority(syscall.PRIO_PROCESS, 0, 19) //nolint:errcheck // best effort
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19) //nolint:errcheck // best effort
		}
	}
}
