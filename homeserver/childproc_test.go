package homeserver_test

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/privateline/privateline/homeserver"
)

// Tests that kill a homeserver with SIGKILL (as a power cut or the OOM
// killer would) or run it in another network namespace start it as a
// child process: this test binary re-executed with childEnv set, which
// then runs homeserver.Main with the configuration in its environment.

const childEnv = "PRIVATELINE_TEST_CRASH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(homeserver.Main([]string{"-env-file", os.DevNull}, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// child is a homeserver process.
type child struct {
	cmd     *exec.Cmd
	addr    string // HTTP host:port
	fedAddr string // federation UDP host:port, "" when federation is off
	metrics string // metrics host:port, "" when off
	done    chan struct{}

	tailMu sync.Mutex
	tail   []string // the last lines the process logged, for a failure
}

// childOptions changes how startChildWith runs the homeserver.
type childOptions struct {
	// env is appended to the defaults: a variable set here wins.
	env []string
	// wrap is a command the homeserver runs under, such as
	// "ip netns exec NAME" (it must exec the program, so that killing the
	// process kills the homeserver).
	wrap []string
}

var (
	startedRE = regexp.MustCompile(`"msg":"homeserver started".*?"addr":"([^"]+)"`)
	fedAddrRE = regexp.MustCompile(`"federation_addr":"([^"]*)"`)
	metricsRE = regexp.MustCompile(`"metrics_addr":"([^"]*)"`)
)

// startChild starts a homeserver process named hs.test on dataDir,
// listening on 127.0.0.1 port 0, and waits until it listens.
func startChild(t *testing.T, dataDir string) *child {
	t.Helper()
	return startChildWith(t, dataDir, childOptions{})
}

// startChildWith starts a homeserver process on dataDir with the options
// and waits until it listens. The test's cleanup kills it and fails the
// test if the (race-enabled) process reported a data race.
func startChildWith(t *testing.T, dataDir string, o childOptions) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string(nil), o.wrap...), exe, "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"DATA_DIR="+dataDir,
		"LISTEN_ADDR=127.0.0.1:0",
		"METRICS_ADDR=",
		"SERVER_NAME=hs.test",
		"PRIVATELINE_ENV=development",
		"JWT_SECRET_KEY=", "AES_KEY=", "ENCRYPTED_LOG_KEY=", "LOG_PATH=", "SENTRY_DSN=",
		"AUTH_RATE_PER_MINUTE=60000", "AUTH_RATE_BURST=100000",
		"LOGIN_RATE_PER_MINUTE=60000", "LOGIN_RATE_BURST=100000",
		"MESSAGE_RATE_PER_MINUTE=600000", "MESSAGE_RATE_BURST=100000",
	)
	cmd.Env = append(cmd.Env, o.env...) // the last value of a variable wins
	// Our own pipe, so that Wait does not close it under the reader.
	stderr, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = w
	cmd.Stdout = io.Discard
	err = cmd.Start()
	w.Close()
	if err != nil {
		stderr.Close()
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	type addrs struct{ http, fed, metrics string }
	started := make(chan addrs, 1)
	var race []string // a data race the process reported; guarded by c.tailMu
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.tailMu.Lock()
			c.tail = append(c.tail[max(0, len(c.tail)-59):], sc.Text())
			if strings.Contains(sc.Text(), "WARNING: DATA RACE") || len(race) > 0 && len(race) < 60 {
				race = append(race, sc.Text())
			}
			c.tailMu.Unlock()
			if m := startedRE.FindSubmatch(sc.Bytes()); m != nil {
				a := addrs{http: string(m[1])}
				if f := fedAddrRE.FindSubmatch(sc.Bytes()); f != nil {
					a.fed = string(f[1])
				}
				if f := metricsRE.FindSubmatch(sc.Bytes()); f != nil {
					a.metrics = string(f[1])
				}
				select {
				case started <- a:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		stderr.Close()
	}()
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
		<-scanned
		if len(race) > 0 {
			t.Errorf("the homeserver process reported a data race:\n%s", strings.Join(race, "\n"))
		}
	})
	select {
	case a := <-started:
		c.addr, c.fedAddr, c.metrics = a.http, a.fed, a.metrics
	case <-c.done:
		<-scanned
		t.Fatalf("the homeserver process exited (%v) before listening; it logged:\n%s", cmd.ProcessState, c.logTail())
	case <-time.After(2 * time.Minute):
		t.Fatal("the homeserver process did not start listening")
	}
	return c
}

// logTail is the last lines the process logged.
func (c *child) logTail() string {
	c.tailMu.Lock()
	defer c.tailMu.Unlock()
	return strings.Join(c.tail, "\n")
}

// kill kills the process with SIGKILL and waits until it is gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago,
// for a process that must listen on the same port again after a restart.
func freeUDPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
