package rack_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"strings"
	"time"

	"github.com/rackfork/rack"
)

// A kernel opens a namespace; Start runs a root process in it.
func ExampleKernel() {
	ctx := context.Background()
	k, err := rack.Open(ctx, "mem://")
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	p, err := k.Start(ctx, rack.Spec{Name: "hello", Args: []string{"world"}},
		func(ctx context.Context, self *rack.Self) error {
			fmt.Printf("hello, %s from pid %d (ppid %d)\n", self.Args()[0], self.PID(), self.PPID())
			return nil
		})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit:", p.Wait(ctx))
	// Output:
	// hello, world from pid 100 (ppid 1)
	// exit: <nil>
}

// A process forks children running the same program with other args, and
// reads their exit status.
func ExampleSelf_Fork() {
	ctx := context.Background()
	k, _ := rack.Open(ctx, "mem://")
	defer k.Close()
	prog := func(ctx context.Context, self *rack.Self) error {
		if self.Forked() { // a child it forked (a root is not Forked)
			if self.Args()[0] == "fail" {
				return errors.New("something broke")
			}
			return nil
		}
		for _, arg := range []string{"ok", "fail"} {
			child, err := self.Fork(ctx, rack.Spec{Args: []string{arg}})
			if err != nil {
				return err
			}
			var ee *rack.ExitError
			if err := child.Wait(ctx); errors.As(err, &ee) {
				fmt.Printf("child %s: exit code %d: %s\n", arg, ee.Code(), ee.Reason)
			} else {
				fmt.Printf("child %s: %v\n", arg, err)
			}
		}
		return nil
	}
	root, _ := k.Start(ctx, rack.Spec{Name: "parent"}, prog)
	_ = root.Wait(ctx)
	// Output:
	// child ok: <nil>
	// child fail: exit code 1: something broke
}

// Children write to one pipe; the reader sees EOF once they all ended.
func ExampleSelf_Pipe() {
	ctx := context.Background()
	k, _ := rack.Open(ctx, "mem://")
	defer k.Close()
	root, _ := k.Start(ctx, rack.Spec{Name: "sum"}, func(ctx context.Context, self *rack.Self) error {
		if self.Forked() {
			_, err := fmt.Fprintln(self.Stdout(), len(self.Args()[0]))
			return err
		}
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		for _, word := range []string{"one", "three", "eleven"} {
			if _, err := self.Fork(ctx, rack.Spec{Args: []string{word}, Stdout: w}); err != nil {
				return err
			}
		}
		w.Close() // our copy of the write end; EOF comes when the children's close
		total := 0
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var n int
			fmt.Sscan(sc.Text(), &n)
			total += n
		}
		fmt.Println("letters:", total)
		return sc.Err()
	})
	_ = root.Wait(ctx)
	// Output: letters: 14
}

// A group is waited on and killed as one.
func ExampleGroup() {
	ctx := context.Background()
	k, _ := rack.Open(ctx, "mem://")
	defer k.Close()
	g, _ := k.NewGroup(ctx, "servers")
	root, _ := k.Start(ctx, rack.Spec{Name: "init"}, func(ctx context.Context, self *rack.Self) error {
		if self.Forked() {
			<-ctx.Done() // serve until told to stop
			return ctx.Err()
		}
		for i := 0; i < 3; i++ {
			if _, err := self.Fork(ctx, rack.Spec{Name: "server", Group: g}); err != nil {
				return err
			}
		}
		members, _ := g.Processes(ctx)
		fmt.Println("members:", len(members))
		if err := g.Signal(ctx, rack.SIGTERM); err != nil {
			return err
		}
		var ee *rack.ExitError
		if err := g.Wait(ctx); errors.As(err, &ee) {
			fmt.Println("group ended by", ee.Signal())
		}
		return nil
	})
	_ = root.Wait(ctx)
	// Output:
	// members: 3
	// group ended by SIGTERM
}

// Files are /container/object paths in the store.
func ExampleKernel_Create() {
	ctx := context.Background()
	k, _ := rack.Open(ctx, "mem://")
	defer k.Close()
	f, err := k.Create(ctx, "/output/result.txt")
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(f, "pi is about 3.14\n")
	if err := f.Close(); err != nil { // the content becomes visible here
		log.Fatal(err)
	}
	data, _ := fs.ReadFile(k.FS(ctx), "output/result.txt")
	fmt.Print(string(data))
	// A create-only open is the primitive for locks and leader election.
	lock, _ := k.OpenFile(ctx, "/locks/leader", rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL)
	fmt.Println("leader:", lock.Close() == nil)
	_, err = k.OpenFile(ctx, "/locks/leader", rack.O_WRONLY|rack.O_CREATE|rack.O_EXCL)
	fmt.Println("second try exists:", errors.Is(err, fs.ErrExist))
	// Output:
	// pi is about 3.14
	// leader: true
	// second try exists: true
}

// With hosts on, forks run in the slots of warm hosts (here copies of this
// program in host mode, on a local namespace); Hosts lists them, as the
// shell's hosts builtin does. An idle host ends after its idle time.
func ExampleKernel_Hosts() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rack-hosts-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	k, err := rack.Open(ctx, "file://"+dir+"?hosts=1&slots=2&idle=1s&max_hosts=4",
		rack.WithConsole(strings.NewReader(""), io.Discard, io.Discard))
	if err != nil {
		log.Fatal(err)
	}
	defer k.Close()
	root, _ := k.Start(ctx, rack.Spec{Name: "root"}, func(ctx context.Context, self *rack.Self) error {
		r, w, err := self.Pipe(ctx)
		if err != nil {
			return err
		}
		// "os-child" (registered by this package's tests) prints a line
		// and, with "block", runs until it is killed.
		child, err := self.Fork(ctx, rack.Spec{Program: "os-child", Args: []string{"block"}, Stdout: w})
		if err != nil {
			return err
		}
		w.Close()
		if _, err := bufio.NewReader(r).ReadString('\n'); err != nil {
			return err
		}
		hosts, err := k.Hosts(ctx)
		if err != nil {
			return err
		}
		for _, h := range hosts {
			fmt.Printf("%s: %d of %d slots used, idle limit %v\n", h.State, h.Used, h.Slots, h.IdleLimit)
		}
		child.Kill(ctx)
		child.Wait(ctx)
		return nil
	})
	if err := root.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	for {
		hosts, err := k.Hosts(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if len(hosts) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Println("after its idle time: no host")
	// Output:
	// busy: 1 of 2 slots used, idle limit 1s
	// after its idle time: no host
}
