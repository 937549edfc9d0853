// Command swiftpipe measures, one side per OS process, a raw ncw/swift
// PUT or GET of an object and a stream through a rack named pipe whose
// writer and reader are separate programs. bench/swift-netns.sh runs it
// with the writer and the reader in network namespaces of their own, each
// with a link shaped like a host's network interface, so that they
// contend for the link and not for the CPU that the loopback Swift
// servers use.
//
//	swiftpipe put  CONTAINER OBJECT MiB      PUT MiB bytes, print the seconds taken
//	swiftpipe get  CONTAINER OBJECT          GET it, print the seconds taken
//	swiftpipe write NAMESPACE FIFO MiB GO    write MiB bytes into the named pipe once
//	                                         the file GO exists; print the start time
//	swiftpipe read  NAMESPACE FIFO GO        read the named pipe to EOF (creating GO
//	                                         when it waits); print the end time
//
// Swift credentials come from SWIFT_AUTH_URL, SWIFT_USER and SWIFT_KEY.
// Times are Unix nanoseconds (one machine, one clock). The bytes are
// pseudo-random from a fixed seed, and both pipe ends print their SHA-256.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	sw "github.com/ncw/swift/v2"

	"github.com/rackfork/rack"
	_ "github.com/rackfork/rack/openstack" // swift+v1://
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "swiftpipe:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: swiftpipe put|get|write|read ARGS (see the source)")
	}
	switch mode := args[0]; {
	case mode == "put" && len(args) == 4:
		mib, err := strconv.Atoi(args[3])
		if err != nil {
			return fmt.Errorf("MiB %q: %w", args[3], err)
		}
		conn, err := connect(ctx)
		if err != nil {
			return err
		}
		if err := conn.ContainerCreate(ctx, args[1], nil); err != nil {
			return err
		}
		data := payload(mib)
		start := time.Now()
		if _, err := conn.ObjectPut(ctx, args[1], args[2], bytes.NewReader(data), false, "", "", nil); err != nil {
			return err
		}
		fmt.Printf("%.4f\n", time.Since(start).Seconds())
	case mode == "get" && len(args) == 3:
		conn, err := connect(ctx)
		if err != nil {
			return err
		}
		start := time.Now()
		f, _, err := conn.ObjectOpen(ctx, args[1], args[2], false, nil)
		if err != nil {
			return err
		}
		_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
		f.Close()
		if err != nil {
			return err
		}
		fmt.Printf("%.4f\n", time.Since(start).Seconds())
	case mode == "write" && len(args) == 5:
		mib, err := strconv.Atoi(args[3])
		if err != nil {
			return fmt.Errorf("MiB %q: %w", args[3], err)
		}
		return pipeEnd(ctx, args[1], func(ctx context.Context, self *rack.Self) error {
			if err := self.Kernel().Mkfifo(ctx, args[2]); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			w, err := self.OpenFifoWriter(ctx, args[2])
			if err != nil {
				return err
			}
			data := payload(mib)
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
				if _, err := os.Stat(args[4]); err == nil {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("no reader after a minute (%s not made)", args[4])
				}
			}
			start := time.Now()
			if _, err := w.Write(data); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			fmt.Printf("start %d sha256 %x\n", start.UnixNano(), sha256.Sum256(data))
			return nil
		})
	case mode == "read" && len(args) == 4:
		return pipeEnd(ctx, args[1], func(ctx context.Context, self *rack.Self) error {
			if err := self.Kernel().Mkfifo(ctx, args[2]); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			r, err := self.OpenFifoReader(ctx, args[2])
			if err != nil {
				return err
			}
			if err := os.WriteFile(args[3], nil, 0o600); err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.Copy(h, r)
			if err != nil {
				return err
			}
			fmt.Printf("end %d bytes %d sha256 %x\n", time.Now().UnixNano(), n, h.Sum(nil))
			return nil
		})
	default:
		return fmt.Errorf("bad arguments %q (see the source)", args)
	}
	return nil
}

func connect(ctx context.Context) (*sw.Connection, error) {
	conn := &sw.Connection{UserName: os.Getenv("SWIFT_USER"), ApiKey: os.Getenv("SWIFT_KEY"),
		AuthUrl: os.Getenv("SWIFT_AUTH_URL"), AuthVersion: 1}
	return conn, conn.Authenticate(ctx)
}

// payload returns mib MiB of pseudo-random bytes, the same every time.
func payload(mib int) []byte {
	r := rand.NewChaCha8([32]byte{'r', 'a', 'c', 'k'})
	data := make([]byte, mib<<20)
	_, _ = r.Read(data)
	return data
}

// pipeEnd runs f as a root process in the rack namespace swift+v1:///ns.
func pipeEnd(ctx context.Context, ns string, f rack.Program) error {
	k, err := rack.Open(ctx, "swift+v1:///"+ns)
	if err != nil {
		return err
	}
	defer k.Close()
	p, err := k.Start(ctx, rack.Spec{Name: "swiftpipe"}, f)
	if err != nil {
		return err
	}
	err = p.Wait(ctx)
	fmt.Fprintf(os.Stderr, "swiftpipe: %s requests: %v\n", os.Args[1], k.Stats())
	return err
}
