package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// runnerEnv, set to 1, makes the harness binary serve as the runner.
const runnerEnv = "COFFER_BENCH_RUNNER"

// runner starts the measured commands from a small child process.
//
// Linux's ru_maxrss of a child counts the peak RSS of the address space it
// was forked from: exec keeps the old address space's high-water mark, and
// Go starts children sharing the parent's memory until exec. Commands
// started by the harness itself, whose peak grows while it generates
// datasets (to about 95 MiB for big-file), would therefore report at least
// that peak. The runner is started before anything else, while the harness
// is small, and starts every measured command; its own peak is what a
// command's peak RSS can be overstated by, about 10 MiB.
type runner struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	enc *json.Encoder
	dec *json.Decoder
}

// commandWire and resultWire are what the harness and the runner send
// each other, one JSON value per command.
type commandWire struct {
	Argv   []string
	Env    []string
	Dir    string
	Stdout string
}

type resultWire struct {
	Sample Sample
	Err    string
}

func startRunner() (*runner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting the runner: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), runnerEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the runner: %w", err)
	}
	return &runner{cmd: cmd, in: in, enc: json.NewEncoder(in), dec: json.NewDecoder(out)}, nil
}

// run runs c in the runner and returns what it cost.
func (r *runner) run(c command) (Sample, error) {
	if err := r.enc.Encode(commandWire{Argv: c.argv, Env: c.env, Dir: c.dir, Stdout: c.stdout}); err != nil {
		return Sample{}, fmt.Errorf("sending a command to the runner: %w", err)
	}
	var res resultWire
	if err := r.dec.Decode(&res); err != nil {
		return Sample{}, fmt.Errorf("reading the runner's result: %w", err)
	}
	if res.Err != "" {
		return res.Sample, errors.New(res.Err)
	}
	return res.Sample, nil
}

// close stops the runner.
func (r *runner) close() error {
	r.in.Close()
	return r.cmd.Wait()
}

// serveRunner is the runner: it runs each command read from standard
// input and writes its result to standard output.
func serveRunner() error {
	dec := json.NewDecoder(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for {
		var c commandWire
		if err := dec.Decode(&c); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		s, err := run(command{argv: c.Argv, env: c.Env, dir: c.Dir, stdout: c.Stdout})
		res := resultWire{Sample: s}
		if err != nil {
			res.Err = err.Error()
		}
		if err := enc.Encode(res); err != nil {
			return err
		}
	}
}
