package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procStats are a process's figures from /proc.
type procStats struct {
	// cpu is user plus system time.
	cpu time.Duration
	// rss is the resident set size (VmRSS), hwm its peak (VmHWM), in bytes.
	rss, hwm uint64
}

// clockTicks is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100
// on every Linux platform.
const clockTicks = 100

// readProc reads the figures of process pid ("self" for this one).
func readProc(pid string) (procStats, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStats{}, err
	}
	ticks, err := parseProcStat(stat)
	if err != nil {
		return procStats{}, err
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procStats{}, err
	}
	st := procStats{cpu: time.Duration(ticks) * time.Second / clockTicks}
	if st.rss, err = parseProcStatus(status, "VmRSS"); err != nil {
		return procStats{}, err
	}
	if st.hwm, err = parseProcStatus(status, "VmHWM"); err != nil {
		return procStats{}, err
	}
	return st, nil
}

// parseProcStat returns utime+stime, in clock ticks, from the text of
// /proc/PID/stat. The command name, in parentheses, may hold spaces and
// parentheses itself, so the fields are counted from the last ')'.
func parseProcStat(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	// After the name: field 3 (state) onwards; utime is field 14, stime 15.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return utime + stime, nil
}

// parseProcStatus returns the value of a "Key:   N kB" line of
// /proc/PID/status, in bytes.
func parseProcStatus(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: %s: %q", key, strings.TrimSpace(rest))
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: %s: %w", key, err)
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("/proc status: no %s", key)
}

// readAnon returns the anonymous resident memory (RssAnon) of process
// pid, in bytes.
func readAnon(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseProcStatus(b, "RssAnon")
}
