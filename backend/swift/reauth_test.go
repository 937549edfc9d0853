package swift

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/rackfork/rack/backend"
)

// An expired (here: forged) token is renewed: on a 401 the driver
// authenticates again and resends the request once (a Put's body from a
// fresh reader; a body that cannot be read afresh fails with ErrTransient,
// for the layer above to send again).
func TestTokenRefresh(t *testing.T) {
	s := liveStore(t, nil)
	ctx := context.Background()
	c := "rack-swifttest-reauth-" + newToken()
	if err := s.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	defer s.DeleteContainer(ctx, c)
	expire := func() {
		s.conn.UnAuthenticate()
		s.conn.AuthToken = "AUTH_tk00000000000000000000000000000000" // a token Swift does not know
		s.conn.StorageUrl = strings.TrimSuffix(os.Getenv("SWIFT_STORAGE_URL"), "/")
		if s.conn.StorageUrl == "" {
			t.Skip("SWIFT_STORAGE_URL unset")
		}
	}
	expire()
	if _, err := s.Put(ctx, c, "o", strings.NewReader("x"), nil); err != nil {
		t.Fatalf("Put with an expired token: %v", err)
	}
	expire()
	if _, err := s.Head(ctx, c, "o"); err != nil {
		t.Fatalf("Head with an expired token: %v", err)
	}
	expire()
	if err := s.Delete(ctx, c, "o"); err != nil {
		t.Fatalf("Delete with an expired token: %v", err)
	}
	_ = backend.ErrNotFound
}
