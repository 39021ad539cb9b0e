package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat: 100 on every
// Linux architecture Go runs on (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// procTimes are the CPU times of /proc/<pid>/stat, in clock ticks: the
// process's own (all its threads), and those of its children that it reaped.
type procTimes struct {
	self, children int64
	ppid           int
	comm           string
}

// readStat parses /proc/<pid>/stat. Fields after the command (which may hold
// spaces and parentheses, so it is cut at the last ')'): 4 ppid, 14 utime,
// 15 stime, 16 cutime, 17 cstime (man 5 proc).
func readStat(pid int) (procTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[end+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i-3], 10, 64); return v }
	return procTimes{self: n(14) + n(15), children: n(16) + n(17), ppid: int(n(4)), comm: s[open+1 : end]}, nil
}

// cpuTicks is the CPU time, in clock ticks, of pid and of its processes: for a
// single process (the server), its own time; with tree, also that of its live
// children and of the children it already reaped (a PostgreSQL postmaster: its
// backends come and go, and a backend's time passes to the postmaster's
// children times when it exits). Zero when pid is 0 or gone.
func cpuTicks(pid int, tree bool) int64 {
	if pid <= 0 {
		return 0
	}
	root, err := readStat(pid)
	if err != nil {
		return 0
	}
	if !tree {
		return root.self
	}
	total := root.self + root.children
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil || child == pid {
			continue
		}
		if t, err := readStat(child); err == nil && t.ppid == pid {
			total += t.self + t.children
		}
	}
	return total
}

// loadAvg is the first three fields of /proc/loadavg ("1.24 2.01 3.14"), or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// machineTicks is the machine's busy CPU time (user, nice, system, irq,
// softirq: every process, all CPUs) from the first line of /proc/stat, in
// clock ticks.
func machineTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	return n(1) + n(2) + n(3) + n(6) + n(7)
}
