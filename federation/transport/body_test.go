package transport

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// A frame followed by raw bytes (a file answer, spec/federation.md
// §12.4): the receiver gets exactly n bytes and then the end; the body
// ending early, or going on past n, is ErrProtocol; a body that stalls
// fails at its progress deadline.
func TestFrameThenBody(t *testing.T) {
	d, c := pair(t, Limits{}, Limits{})
	ctx := testCtx(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 20<<10) // 320 KiB, several chunks

	for name, tc := range map[string]struct {
		send    []byte // raw bytes after the frame
		n       int64  // bytes announced
		wantErr error
	}{
		"exact":     {body, int64(len(body)), nil},
		"truncated": {body[:1000], int64(len(body)), ErrProtocol},
		"too long":  {append(append([]byte(nil), body...), 'x'), int64(len(body)), ErrProtocol},
		"empty":     {nil, 0, nil},
	} {
		t.Run(name, func(t *testing.T) {
			st, err := d.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.SetDeadline(time.Now().Add(5 * time.Second))
			if err := st.SendFrame([]byte("answer")); err != nil {
				t.Fatal(err)
			}
			go func() {
				st.s.Write(tc.send)
				st.s.Close()
			}()
			in, err := c.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			in.SetDeadline(time.Now().Add(5 * time.Second))
			p, err := in.ReceiveFrame()
			if err != nil || string(p) != "answer" {
				t.Fatalf("frame %q, %v", p, err)
			}
			got, err := io.ReadAll(in.Body(tc.n, 5*time.Second))
			if tc.wantErr == nil {
				if err != nil || !bytes.Equal(got, tc.send) {
					t.Fatalf("%d bytes, %v", len(got), err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("%v, want %v", err, tc.wantErr)
			}
			if int64(len(got)) > tc.n {
				t.Fatalf("read %d bytes past the %d announced", len(got), tc.n)
			}
		})
	}

	t.Run("SendBody", func(t *testing.T) {
		st, err := d.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.SetDeadline(time.Now().Add(5 * time.Second))
		if err := st.SendFrame([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- st.SendBody(bytes.NewReader(body), int64(len(body)), 5*time.Second) }()
		in, err := c.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		in.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := in.ReceiveFrame(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(in.Body(int64(len(body)), 5*time.Second))
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// A reader shorter than announced: SendBody fails and cancels.
		st2, err := d.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st2.SendFrame([]byte("answer"))
		if err := st2.SendBody(strings.NewReader("short"), 100, time.Second); err == nil {
			t.Fatal("SendBody of a short reader succeeded")
		}
		in2, err := c.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		in2.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := in2.ReceiveFrame(); err == nil {
			_, err = io.ReadAll(in2.Body(100, 5*time.Second))
			if err == nil {
				t.Fatal("the receiver of a cancelled body read it whole")
			}
		}
	})

	t.Run("stall", func(t *testing.T) {
		st, err := d.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.SendFrame([]byte("answer"))
		st.s.Write([]byte("abc")) // then nothing, and no end
		in, err := c.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		in.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := in.ReceiveFrame(); err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(in.Body(10, 200*time.Millisecond))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stalled body: %v, want a deadline error", err)
		}
		st.Cancel()
	})
}
