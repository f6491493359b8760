package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Sample is what one tool command cost, measured from the outside.
type Sample struct {
	Wall      time.Duration // from start to exit
	CPU       time.Duration // user + system time of the process and its waited children
	MaxRSSKiB int64         // peak resident set size (Linux reports KiB)
	DiskRead  int64         // bytes read from block devices (0 when the page cache had them)
	Stored    int64         // size of the store after the command; -1 when not measured
}

// command is one child process to run and measure.
type command struct {
	argv   []string
	env    []string // added to the harness's environment
	dir    string
	stdout string // file to receive standard output; discarded when empty
}

// run starts c as a child process, waits for it and returns its costs
// taken from wait4's rusage. A failing command is an error that quotes the
// end of its standard error.
func run(c command) (Sample, error) {
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Dir = c.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if c.stdout != "" {
		f, err := os.Create(c.stdout)
		if err != nil {
			return Sample{}, fmt.Errorf("creating %s for the output of %s: %w", c.stdout, c.argv[0], err)
		}
		defer f.Close()
		cmd.Stdout = f
	}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		return Sample{}, fmt.Errorf("%s: %w: %s", strings.Join(c.argv, " "), err, msg)
	}
	s := Sample{Wall: wall, Stored: -1}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		s.MaxRSSKiB = ru.Maxrss
		s.DiskRead = ru.Inblock * 512
	}
	return s, nil
}

// dirSize returns the total size of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring the size of %s: %w", dir, err)
	}
	return n, nil
}

// procCPU returns the user + system CPU time a running process has used so
// far, from /proc/PID/stat (Linux only; zero elsewhere).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; the fields we want follow ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on every Linux architecture Go supports
	return time.Duration(ut+st) * time.Second / clkTck
}

// median returns the median of xs (the lower middle for an even count).
func median[T int64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// medianSample reduces the samples of one tool and scenario to their
// per-measure medians.
func medianSample(ss []Sample) Sample {
	var wall, cpu []time.Duration
	var rss, disk, stored []int64
	for _, s := range ss {
		wall = append(wall, s.Wall)
		cpu = append(cpu, s.CPU)
		rss = append(rss, s.MaxRSSKiB)
		disk = append(disk, s.DiskRead)
		stored = append(stored, s.Stored)
	}
	return Sample{Wall: median(wall), CPU: median(cpu), MaxRSSKiB: median(rss), DiskRead: median(disk), Stored: median(stored)}
}
