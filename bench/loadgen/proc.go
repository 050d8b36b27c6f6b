package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// raiseFileLimit raises the soft limit on open files to the hard limit and
// returns it. Each client holds one connection, and POSTs need a few more.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise the open file limit to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// memory is a process's resident set, from /proc/PID/status.
type memory struct {
	RSS  int64 // VmRSS, in KiB
	Peak int64 // VmHWM, the largest RSS so far, in KiB
}

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var p *int64
		switch name {
		case "VmRSS":
			p = &m.RSS
		case "VmHWM":
			p = &m.Peak
		default:
			continue
		}
		kb, _ := strings.CutSuffix(strings.TrimSpace(value), " kB")
		if *p, err = strconv.ParseInt(kb, 10, 64); err != nil {
			return memory{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, name, err)
		}
	}
	if m.RSS == 0 {
		return memory{}, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return m, nil
}

// cpuTime returns the CPU time, user and system, that process pid has used,
// from /proc/PID/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count the fields from the last ')'. utime and stime are fields 14
	// and 15 of the line, so 11 and 12 after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(fields))
	}
	var ticks uint64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	hz, err := clockTicks()
	if err != nil {
		return 0, err
	}
	return time.Duration(ticks) * time.Second / time.Duration(hz), nil
}

// clockTicks returns the unit of the times in /proc/PID/stat, in ticks per
// second: the AT_CLKTCK entry of the auxiliary vector (sysconf(_SC_CLK_TCK)
// in C).
func clockTicks() (uint64, error) {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 0, err
	}
	// Pairs of native words, type then value; the vector ends with type 0.
	word := strconv.IntSize / 8
	read := func(b []byte) uint64 {
		if word == 4 {
			return uint64(binary.NativeEndian.Uint32(b))
		}
		return binary.NativeEndian.Uint64(b)
	}
	for ; len(b) >= 2*word; b = b[2*word:] {
		switch read(b) {
		case 0:
			return 0, errors.New("/proc/self/auxv has no AT_CLKTCK")
		case atClkTck:
			return read(b[word:]), nil
		}
	}
	return 0, errors.New("/proc/self/auxv has no AT_CLKTCK")
}

// fileLimit returns the soft limit on open files of process pid, from
// /proc/PID/limits.
func fileLimit(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			if fields[0] == "unlimited" {
				return 1<<63 - 1, nil
			}
			return strconv.ParseUint(fields[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/limits has no open file limit", pid)
}
