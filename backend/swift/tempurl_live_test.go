package swift

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sw "github.com/ncw/swift/v2"
)

// TestContainerTempURLKeyLive: TempURL signs with a key of the object's
// container (set on first use), with HMAC-SHA256, and such a URL carried
// over to another container's object of the same name is refused.
func TestContainerTempURLKeyLive(t *testing.T) {
	s := liveStore(t, nil)
	ctx := context.Background()
	a, b := "rack-swifttest-tka-"+newToken(), "rack-swifttest-tkb-"+newToken()
	for _, c := range []string{a, b} {
		if err := s.CreateContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(ctx, c, "o", strings.NewReader("in "+c), nil); err != nil {
			t.Fatal(err)
		}
		defer func(c string) {
			_ = s.Delete(ctx, c, "o")
			_ = s.DeleteContainer(ctx, c)
		}(c)
	}
	u, err := s.TempURL(ctx, "GET", a, "o", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(u)
	if sig := pu.Query().Get("temp_url_sig"); len(sig) != 64 {
		t.Errorf("signature %d hex digits, want 64 (HMAC-SHA256)", len(sig))
	}
	_, h, err := s.call(ctx, sw.RequestOpts{Container: a, Operation: "HEAD", NoResponse: true})
	if err != nil {
		t.Fatal(err)
	}
	if h[hdrContainerTempURLKey] == "" {
		t.Errorf("container %s has no Temp-URL key after TempURL", a)
	}
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(u); code != 200 || body != "in "+a {
		t.Errorf("GET through the URL: HTTP %d %q", code, body)
	}
	other := strings.Replace(u, "/"+a+"/", "/"+b+"/", 1)
	if code, body := get(other); code != 401 || strings.Contains(body, "in "+b) {
		t.Errorf("the URL of %s/o on %s/o: HTTP %d %q, want 401", a, b, code, body)
	}
	if _, err := s.Head(ctx, b, "o"); err != nil {
		t.Fatal(err)
	}
}
