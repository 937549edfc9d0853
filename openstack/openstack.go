// Package openstack opens rack namespaces on OpenStack. Importing it
// registers three URL schemes with rack.Open:
//
//	import _ "github.com/rackfork/rack/openstack"
//
//	swift://CLOUD/CONTAINER
//	              the namespace CONTAINER on the Swift of CLOUD, an entry
//	              of clouds.yaml (Keystone v3: password or application
//	              credential); with no CLOUD, OS_CLOUD or the OS_*
//	              variables (see CloudConfig). Query option: compute=inproc
//	              (the default and, for now, only compute).
//	swift+v1://USER:KEY@HOST:PORT/CONTAINER
//	              the same on a Swift with v1 (tempauth) auth, for
//	              development; USER, KEY and HOST:PORT default to
//	              SWIFT_USER, SWIFT_KEY and SWIFT_AUTH_URL.
//	openstack://CLOUD/CONTAINER?image=ID&flavor=ID&network=ID
//	              the namespace CONTAINER on CLOUD's Swift, processes as
//	              Nova servers that boot a stock cloud-init image and
//	              fetch this program (staged once in BinariesContainer).
//	              Options: image, flavor, network, key_name,
//	              security_groups, availability_zone (server defaults
//	              that Spec.Options override per fork), max_boots (boots
//	              in flight). Children get a credential that reaches only
//	              the namespace's container, never the user's.
//
// The package owns everything OpenStack in rack: reading clouds.yaml and
// OS_* (CloudConfig, once, for Swift, Nova and the credentials alike), the
// Keystone login (Login), the narrow application credential each
// namespace's children get, and the child side of a server (its credential,
// the metadata service, deleting its own server). The drivers it composes,
// backend/swift and backend/nova, take ready configuration and clients.
//
// A child booted on a server runs the same binary as its forker, so this
// package is linked, and its schemes registered, there too.
package openstack

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/rackfork/rack"
	"github.com/rackfork/rack/backend/inproc"
	"github.com/rackfork/rack/backend/swift"
)

func init() {
	rack.RegisterScheme("swift", openSwift)
	rack.RegisterScheme("swift+v1", openSwift)
	rack.RegisterScheme("openstack", openOpenStack)
}

// openSwift opens swift://CLOUD/CONTAINER and
// swift+v1://USER:KEY@HOST:PORT/CONTAINER: a Swift store with goroutine
// processes.
func openSwift(ctx context.Context, u *url.URL, opts []rack.Option) (*rack.Kernel, error) {
	cfg, container, err := swiftConfig(u)
	if err != nil {
		return nil, err
	}
	s, err := swift.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	k, err := rack.New(ctx, s, inproc.New(), append([]rack.Option{rack.WithNamespace(container)}, opts...)...)
	if err != nil {
		s.Close()
		return nil, err
	}
	return k, nil
}

// swiftConfig reads a swift or swift+v1 URL and returns the store's
// configuration and the namespace container.
func swiftConfig(u *url.URL) (swift.Config, string, error) {
	var (
		cfg swift.Config
		err error
	)
	if u.Scheme == "swift" {
		if u.User != nil || u.Port() != "" {
			return cfg, "", fmt.Errorf("%w: a swift URL is swift://CLOUD/CONTAINER (credentials come from clouds.yaml or OS_*, never the URL)", rack.ErrInvalid)
		}
		if cfg, err = CloudConfig(u.Host); err != nil {
			return cfg, "", fmt.Errorf("%w: %v", rack.ErrInvalid, err)
		}
	} else if cfg, err = swiftV1Config(u); err != nil {
		return cfg, "", err
	}
	container := strings.Trim(u.Path, "/")
	if container == "" {
		return cfg, "", fmt.Errorf("%w: the URL names no container (%s://.../CONTAINER)", rack.ErrInvalid, u.Scheme)
	}
	if err := rack.CheckNamespace(container); err != nil {
		return cfg, "", err
	}
	for key, vals := range u.Query() {
		switch {
		case key == "compute" && len(vals) == 1 && vals[0] == "inproc":
		case key == "compute":
			return cfg, "", fmt.Errorf("%w: compute=%q is not supported (supported: inproc)", rack.ErrInvalid, strings.Join(vals, ","))
		default:
			return cfg, "", fmt.Errorf("%w: unknown URL option %q", rack.ErrInvalid, key)
		}
	}
	return cfg, container, nil
}

// swiftV1Config reads the credentials of a swift+v1 URL, filling gaps
// from SWIFT_AUTH_URL, SWIFT_USER and SWIFT_KEY.
func swiftV1Config(u *url.URL) (swift.Config, error) {
	cfg, err := swift.FromEnv()
	if err != nil && (u.Host == "" || u.User == nil) {
		return cfg, fmt.Errorf("%w: %v", rack.ErrInvalid, err)
	}
	if u.Host != "" {
		cfg.AuthURL = "http://" + u.Host + "/auth/v1.0"
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		if key, ok := u.User.Password(); ok {
			cfg.Key = key
		}
	}
	return cfg, nil
}
