package auth

import "syscall"

// lowerThreadPriority makes the calling OS thread the last to get a CPU when
// others want one (nice 19). On Linux the niceness of PRIO_PROCESS with a
// thread id applies to that thread only.
func lowerThreadPriority() {
	syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19) //nolint:errcheck // best effort
}
