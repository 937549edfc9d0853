package faults_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rackfork/rack/internal/faults"
)

// server records the requests that reached it and their bodies.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string]string // path -> last body received
	hits   atomic.Int64
}

func newServer(t *testing.T) *server {
	s := &server{bodies: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies[r.URL.Path] = string(b)
		s.mu.Unlock()
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusCreated)
			return
		}
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) body(path string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bodies[path]
	return b, ok
}

// outcome runs one request through c and describes what the client saw.
func outcome(c *http.Client, method, url, body string) string {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	resp, err := c.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Sprintf("%d, body error after %d bytes", resp.StatusCode, len(data))
	}
	return fmt.Sprint(resp.StatusCode)
}

// TestRate: with Rate 0.1 over 20,000 requests, about 10% are faulted, and
// the kinds are about evenly mixed.
func TestRate(t *testing.T) {
	s := newServer(t)
	for _, rate := range []float64{0.02, 0.1, 0.5} {
		tr := faults.New(http.DefaultTransport, faults.Config{Seed: 7, Rate: rate,
			Kinds: []faults.Kind{faults.Status503, faults.Status500, faults.ResetBefore, faults.ResetAfter}})
		c := &http.Client{Transport: tr}
		const n = 8000
		for i := 0; i < n; i++ {
			outcome(c, "HEAD", s.URL+"/v1/AUTH_t/c/o", "")
		}
		got := float64(tr.Injected()) / n
		// 5 standard deviations of a binomial.
		if tol := 5 * math.Sqrt(rate*(1-rate)/n); math.Abs(got-rate) > tol {
			t.Errorf("rate %v: faulted %v of requests (tolerance %v)", rate, got, tol)
		}
		for k, m := range tr.Counts() {
			share := float64(m) / float64(tr.Injected())
			if tol := 5 * math.Sqrt(0.25*0.75/float64(tr.Injected())); math.Abs(share-0.25) > tol {
				t.Errorf("rate %v: kind %s is %.2f of the faults, want about 0.25", rate, k, share)
			}
		}
		if len(tr.Counts()) != 4 {
			t.Errorf("rate %v: kinds seen %v, want 4", rate, tr.Counts())
		}
		t.Logf("rate %v: %s", rate, tr)
	}
}

// TestDeterministic: the same seed gives the same faults for the same
// sequence of requests; another seed gives others.
func TestDeterministic(t *testing.T) {
	s := newServer(t)
	run := func(seed int64) []string {
		tr := faults.New(nil, faults.Config{Seed: seed, Rate: 0.3, SlowMax: time.Millisecond,
			ListDelayMin: time.Millisecond, ListDelayMax: 2 * time.Millisecond})
		c := &http.Client{Transport: tr}
		var out []string
		for i := 0; i < 300; i++ {
			var o string
			switch i % 3 {
			case 0:
				o = outcome(c, "GET", s.URL+"/v1/AUTH_t/c?format=json", "")
			case 1:
				o = outcome(c, "GET", s.URL+"/v1/AUTH_t/c/o", "")
			default:
				o = outcome(c, "PUT", s.URL+"/v1/AUTH_t/c/o", "data")
			}
			out = append(out, o)
		}
		return out
	}
	a, b, other := run(1), run(1), run(2)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Fatal("two runs with seed 1 differ")
	}
	if strings.Join(a, "\n") == strings.Join(other, "\n") {
		t.Fatal("seeds 1 and 2 gave the same faults")
	}
	kinds := map[string]bool{}
	for _, o := range a {
		kinds[o] = true
	}
	if len(kinds) < 5 {
		t.Errorf("only %d distinct outcomes: %v", len(kinds), kinds)
	}
}

// TestDecide: the plan depends only on (seed, n, class), and kinds that do
// not apply to a class are never planned for it.
func TestDecide(t *testing.T) {
	a := faults.New(nil, faults.Config{Seed: 3, Rate: 0.5})
	b := faults.New(nil, faults.Config{Seed: 3, Rate: 0.5})
	for n := uint64(0); n < 5000; n++ {
		for _, c := range []faults.Class{faults.Other, faults.Listing, faults.ObjectGet} {
			k1, f1, ok1 := a.Decide(n, c)
			k2, f2, ok2 := b.Decide(n, c)
			if k1 != k2 || f1 != f2 || ok1 != ok2 {
				t.Fatalf("Decide(%d, %d) differs", n, c)
			}
			if ok1 && (k1 == faults.ListDelay && c != faults.Listing || k1 == faults.BodyCut && c != faults.ObjectGet) {
				t.Fatalf("Decide(%d, class %d) = %s", n, c, k1)
			}
		}
	}
	for _, tc := range []struct {
		method, url string
		want        faults.Class
	}{
		{"GET", "http://h/v1/AUTH_t/c?format=json&limit=100", faults.Listing},
		{"GET", "http://h/v1/AUTH_t/c", faults.Listing},
		{"GET", "http://h/v1/AUTH_t", faults.Listing},
		{"GET", "http://h/v1/AUTH_t/c/o/p", faults.ObjectGet},
		{"HEAD", "http://h/v1/AUTH_t/c/o", faults.Other},
		{"PUT", "http://h/v1/AUTH_t/c", faults.Other},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		if got := faults.Classify(req); got != tc.want {
			t.Errorf("Classify(%s %s) = %d, want %d", tc.method, tc.url, got, tc.want)
		}
	}
}

func only(k faults.Kind) faults.Config {
	return faults.Config{Seed: 1, Rate: 1, Kinds: []faults.Kind{k}}
}

// TestStatus: 503 and 500 are made up without reaching the server.
func TestStatus(t *testing.T) {
	s := newServer(t)
	for _, k := range []faults.Kind{faults.Status503, faults.Status500} {
		c := &http.Client{Transport: faults.New(nil, only(k))}
		if got := outcome(c, "PUT", s.URL+"/v1/AUTH_t/c/"+k.String(), "body"); got != k.String() {
			t.Errorf("%s: %s", k, got)
		}
		if _, ok := s.body("/v1/AUTH_t/c/" + k.String()); ok {
			t.Errorf("%s: the request reached the server", k)
		}
	}
}

// TestResetBefore: the client gets a reset and the server nothing.
func TestResetBefore(t *testing.T) {
	s := newServer(t)
	c := &http.Client{Transport: faults.New(nil, only(faults.ResetBefore))}
	_, err := c.Post(s.URL+"/v1/AUTH_t/c/o", "text/plain", strings.NewReader("hello"))
	var ne net.Error
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &ne) || !faults.IsInjected(err) {
		t.Fatalf("err = %v, want an injected connection reset", err)
	}
	if s.hits.Load() != 0 {
		t.Fatal("the request reached the server")
	}
}

// TestResetAfter: the server received the whole body, the client a reset.
func TestResetAfter(t *testing.T) {
	s := newServer(t)
	c := &http.Client{Transport: faults.New(nil, only(faults.ResetAfter))}
	body := strings.Repeat("payload ", 100000)
	req, _ := http.NewRequest("PUT", s.URL+"/v1/AUTH_t/c/o", strings.NewReader(body))
	_, err := c.Do(req)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err = %v, want a connection reset", err)
	}
	if got, _ := s.body("/v1/AUTH_t/c/o"); got != body {
		t.Fatalf("the server received %d bytes, want %d", len(got), len(body))
	}
}

// TestSlow: a slow fault ends when the request's context does, or at
// SlowMax, whichever comes first; the request reached the server.
func TestSlow(t *testing.T) {
	s := newServer(t)
	c := &http.Client{Transport: faults.New(nil, only(faults.Slow))}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "PUT", s.URL+"/v1/AUTH_t/c/slow", strings.NewReader("x"))
	start := time.Now()
	_, err := c.Do(req)
	if el := time.Since(start); el < 90*time.Millisecond || el > 2*time.Second {
		t.Errorf("returned after %v, want about 100 ms", el)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
	if got, _ := s.body("/v1/AUTH_t/c/slow"); got != "x" {
		t.Errorf("the server got %q", got)
	}

	// Cancelled mid-wait.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	req, _ = http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/AUTH_t/c/o", nil)
	if _, err := c.Do(req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}

	// No deadline: SlowMax bounds it with a timeout error.
	cfg := only(faults.Slow)
	cfg.SlowMax = 50 * time.Millisecond
	c = &http.Client{Transport: faults.New(nil, cfg)}
	start = time.Now()
	_, err = c.Get(s.URL + "/v1/AUTH_t/c/o")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 2*time.Second {
		t.Errorf("SlowMax: err = %v after %v, want a timeout after 50 ms", err, time.Since(start))
	}
}

// TestListDelay: listings are delayed 50-200 ms and forwarded; other
// requests are not faulted when only ListDelay is enabled.
func TestListDelay(t *testing.T) {
	s := newServer(t)
	tr := faults.New(nil, only(faults.ListDelay))
	c := &http.Client{Transport: tr}
	for i := 0; i < 5; i++ {
		start := time.Now()
		if got := outcome(c, "GET", s.URL+"/v1/AUTH_t/c?format=json", ""); got != "200" {
			t.Fatalf("listing: %s", got)
		}
		if el := time.Since(start); el < 50*time.Millisecond || el > time.Second {
			t.Errorf("listing took %v, want 50-200 ms", el)
		}
	}
	start := time.Now()
	if got := outcome(c, "GET", s.URL+"/v1/AUTH_t/c/o", ""); got != "200" || time.Since(start) > 40*time.Millisecond {
		t.Errorf("object GET: %s after %v", got, time.Since(start))
	}
	if n := tr.Counts()[faults.ListDelay]; n != 5 || tr.Injected() != 5 {
		t.Errorf("counts %v", tr.Counts())
	}
	// Cancelled while delayed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/AUTH_t/c?format=json", nil)
	if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled listing: %v", err)
	}
}

// TestBodyCut: an object GET's body breaks half way with a reset.
func TestBodyCut(t *testing.T) {
	s := newServer(t)
	c := &http.Client{Transport: faults.New(nil, only(faults.BodyCut))}
	resp, err := c.Get(s.URL + "/v1/AUTH_t/c/o")
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(data) != 500 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %d bytes, %v; want 500 and a reset", len(data), err)
	}
}

// TestAuthExempt: authentication passes untouched and is not numbered.
func TestAuthExempt(t *testing.T) {
	s := newServer(t)
	tr := faults.New(nil, faults.Config{Seed: 1, Rate: 1})
	c := &http.Client{Transport: tr}
	for i := 0; i < 20; i++ {
		if got := outcome(c, "GET", s.URL+"/auth/v1.0", ""); got != "200" {
			t.Fatalf("auth: %s", got)
		}
	}
	if n, ex := tr.Requests(); n != 0 || ex != 20 || tr.Injected() != 0 {
		t.Fatalf("numbered %d, exempt %d, injected %d", n, ex, tr.Injected())
	}
	tr.SetEnabled(false)
	if got := outcome(c, "GET", s.URL+"/v1/AUTH_t/c/o", ""); got != "200" {
		t.Fatalf("disabled: %s", got)
	}
}

func TestParseKinds(t *testing.T) {
	ks, err := faults.ParseKinds("503, reset-after,slow")
	if err != nil || len(ks) != 3 || ks[0] != faults.Status503 || ks[1] != faults.ResetAfter || ks[2] != faults.Slow {
		t.Fatalf("ParseKinds = %v, %v", ks, err)
	}
	if ks, err := faults.ParseKinds("all"); err != nil || len(ks) != len(faults.AllKinds()) {
		t.Fatalf("all: %v, %v", ks, err)
	}
	if _, err := faults.ParseKinds("503,bogus"); err == nil {
		t.Fatal("bogus kind accepted")
	}
}
