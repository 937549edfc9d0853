package novaemu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// KeystoneValidator returns a TokenValidator that validates tokens with
// Keystone's identity API v3 (GET /v3/auth/tokens, the subject token in
// X-Subject-Token, adminToken in X-Auth-Token), as keystonemiddleware does
// in front of Nova. authURL is Keystone's endpoint, with or without the
// trailing /v3. Valid tokens are cached until they expire, at most 5
// minutes, so a test's request count to Keystone stays small.
func KeystoneValidator(authURL, adminToken string) TokenValidator {
	u := strings.TrimRight(authURL, "/")
	if !strings.HasSuffix(u, "/v3") {
		u += "/v3"
	}
	k := &keystone{url: u + "/auth/tokens?nocatalog", admin: adminToken,
		client: &http.Client{Timeout: 10 * time.Second}, valid: map[string]time.Time{}}
	return k.validate
}

type keystone struct {
	url, admin string
	client     *http.Client
	mu         sync.Mutex
	valid      map[string]time.Time // token -> cache expiry
}

func (k *keystone) validate(ctx context.Context, token string) error {
	now := time.Now()
	k.mu.Lock()
	exp, ok := k.valid[token]
	k.mu.Unlock()
	if ok && now.Before(exp) {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", k.admin)
	req.Header.Set("X-Subject-Token", token)
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("novaemu: keystone: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound: // Keystone: "Could not find token"
		return fmt.Errorf("%w (keystone answered 404)", ErrInvalidToken)
	default: // e.g. 401: the admin token, not the subject token, is bad
		return fmt.Errorf("novaemu: keystone answered %s", resp.Status)
	}
	var body struct {
		Token struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("novaemu: keystone: bad token body: %w", err)
	}
	exp = now.Add(5 * time.Minute)
	if t := body.Token.ExpiresAt; !t.IsZero() && t.Before(exp) {
		exp = t
	}
	if !exp.After(now) {
		return fmt.Errorf("%w (expired)", ErrInvalidToken)
	}
	k.mu.Lock()
	if len(k.valid) >= 4096 { // bound the cache; tests use few tokens
		clear(k.valid)
	}
	k.valid[token] = exp
	k.mu.Unlock()
	return nil
}
