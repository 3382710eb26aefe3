package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// server is the homeserver under test.
type server struct {
	url string
	pid int // 0: unknown (no RSS figures)
	cmd *exec.Cmd
	dir string
}

var startedRE = regexp.MustCompile(`"msg":"homeserver started".*?"addr":"(127\.0\.0\.1:\d+)"`)

// startServer starts bin on a fresh data directory with limits raised for
// load, and waits until it listens.
func startServer(bin string) (*server, error) {
	dir, err := os.MkdirTemp("", "plbench-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-env-file", os.DevNull)
	cmd.Env = append(os.Environ(),
		"DATA_DIR="+dir,
		"LISTEN_ADDR=127.0.0.1:0",
		"METRICS_ADDR=",
		"SERVER_NAME=bench.test",
		"PRIVATELINE_ENV=development",
		"JWT_SECRET_KEY=", "AES_KEY=", "ENCRYPTED_LOG_KEY=", "LOG_PATH=", "SENTRY_DSN=",
		"AUTH_RATE_PER_MINUTE=600000", "AUTH_RATE_BURST=100000",
		"LOGIN_RATE_PER_MINUTE=600000", "LOGIN_RATE_BURST=100000",
		"MESSAGE_RATE_PER_MINUTE=60000000", "MESSAGE_RATE_BURST=1000000",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{pid: cmd.Process.Pid, cmd: cmd, dir: dir}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if m := startedRE.FindSubmatch(sc.Bytes()); m != nil {
				select {
				case addr <- string(m[1]):
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
		return s, nil
	case <-time.After(time.Minute):
		s.stop()
		return nil, fmt.Errorf("%s did not start listening within a minute", bin)
	}
}

func (s *server) stop() {
	if s.cmd != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// rss returns the server's resident set size in bytes (0 if unknown).
func (s *server) rss() uint64 {
	if s.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
