package swift_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rackfork/rack/backend"
	"github.com/rackfork/rack/backend/swift"
)

// TestListingLimitLearned: a Store made while the cluster's /info did not
// answer uses Swift's default listing limit (10,000); a cluster with a
// lower one (container_listing_limit = 100) refuses such a page with 412
// "Maximum limit is 100" (swift/common/request_helpers.py,
// constrain_req_limit). The Store then reads the limit from /info and
// lists again, in pages of at most 100, rather than failing every listing
// with "object exists" (a 412's meaning for a put).
func TestListingLimitLearned(t *testing.T) {
	const clusterLimit, objects = 100, 250
	var infoUp atomic.Bool
	var pages, refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/auth/v1.0":
			w.Header().Set("X-Storage-Url", "http://"+r.Host+"/v1/AUTH_test")
			w.Header().Set("X-Auth-Token", "AUTH_tk-fake")
			w.WriteHeader(http.StatusOK)
		case r.URL.Path == "/info":
			if !infoUp.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintf(w, `{"swift": {"container_listing_limit": %d, "account_listing_limit": %d}}`, clusterLimit, clusterLimit)
		case r.URL.Path == "/v1/AUTH_test/c" && r.Method == http.MethodGet:
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			if limit > clusterLimit {
				refused.Add(1)
				w.WriteHeader(http.StatusPreconditionFailed)
				fmt.Fprintf(w, "Maximum limit is %d", clusterLimit)
				return
			}
			pages.Add(1)
			marker := r.URL.Query().Get("marker")
			var entries []string
			for i := 0; i < objects && len(entries) < limit; i++ {
				if name := fmt.Sprintf("o%04d", i); name > marker {
					entries = append(entries, fmt.Sprintf(`{"name": %q, "bytes": 1, "hash": "x", "last_modified": "2026-12-07T12:00:00.000000"}`, name))
				}
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "[%s]", strings.Join(entries, ","))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	s, err := swift.New(context.Background(), swift.Config{AuthURL: srv.URL + "/auth/v1.0", User: "test:tester", Key: "testing", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	infoUp.Store(true) // /info answers from now on
	got, err := s.List(context.Background(), "c", backend.ListOptions{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != objects {
		t.Fatalf("List: %d objects, want %d", len(got), objects)
	}
	if r, p := refused.Load(), pages.Load(); r != 1 || p != 3 {
		t.Errorf("%d pages refused, %d listed; want 1 (before the limit was learned) and 3 of 100", r, p)
	}
	// The limit is kept: no more refusals. A page of 150 is full (the
	// contract: only the last page is short), from two requests.
	pages.Store(0)
	if got, err := s.List(context.Background(), "c", backend.ListOptions{Limit: 150}); err != nil || refused.Load() != 1 || len(got) != 150 || pages.Load() != 2 {
		t.Errorf("second List: %d objects from %d requests, %v, %d refusals in all; want 150 from 2, none more", len(got), pages.Load(), err, refused.Load())
	}

	// While /info does not answer, the refusal is a transient error
	// (a retry may learn the limit), not "object exists".
	infoUp.Store(false)
	s2, err := swift.New(context.Background(), swift.Config{AuthURL: srv.URL + "/auth/v1.0", User: "test:tester", Key: "testing", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.List(context.Background(), "c", backend.ListOptions{}); !errors.Is(err, backend.ErrTransient) || errors.Is(err, backend.ErrExist) {
		t.Errorf("List with /info down: %v, want a transient error", err)
	}
}
