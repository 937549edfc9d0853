package nova

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
)

// Swept describes a server that Sweep deleted.
type Swept struct {
	ID, Name  string
	Namespace string
	PID       int64
	// Reason is "expired" (its rack-delete-at has passed) or "dead
	// namespace".
	Reason string
}

// Sweep deletes the leaked servers of rack in the client's project: those
// with rack metadata (rack-namespace) whose rack-delete-at is not after
// now, and those whose namespace dead reports as dead (dead may be nil; it
// is asked once per namespace, and a namespace it fails on is kept); a
// host's server (rack-host) goes with its namespace like the others. It is
// what `rack gc` runs. It lists every server of the project (servers made
// without tags have only their metadata to tell them apart) and returns
// what it deleted, with the errors met on the way joined.
func Sweep(ctx context.Context, client *gophercloud.ServiceClient, now time.Time, dead func(ctx context.Context, namespace string) (bool, error)) ([]Swept, error) {
	mv := "2.1" // no tags needed: any cloud
	if client != nil && client.Microversion != "" {
		mv = client.Microversion
	}
	c, err := New(Config{Client: client, Microversion: mv, Stager: noStager{}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var list []servers.Server
	err = c.retry(ctx, func(ctx context.Context) error {
		pages, err := servers.List(c.client, servers.ListOpts{}).AllPages(ctx)
		if err == nil {
			list, err = servers.ExtractServers(pages)
		}
		return err
	})
	if err != nil {
		return nil, c.apiError(ctx, "sweep: list servers", err)
	}
	var out []Swept
	var errs []error
	verdicts := map[string]bool{}
	for _, s := range list {
		ns, ok := s.Metadata[MetaNamespace]
		if !ok || gone(&s) {
			continue
		}
		reason := ""
		if at, err := strconv.ParseInt(s.Metadata[MetaDeleteAt], 10, 64); err == nil && !time.Unix(at, 0).After(now) {
			reason = "expired"
		} else if dead != nil {
			d, known := verdicts[ns]
			if !known {
				if d, err = dead(ctx, ns); err != nil {
					errs = append(errs, fmt.Errorf("nova: sweep: is namespace %q dead: %w", ns, err))
				}
				verdicts[ns] = d
			}
			if d {
				reason = "dead namespace"
			}
		}
		if reason == "" {
			continue
		}
		if err := c.deleteServer(ctx, s.Name, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("nova: sweep: %w", err))
			continue
		}
		pid, _ := strconv.ParseInt(s.Metadata[MetaPID], 10, 64)
		out = append(out, Swept{ID: s.ID, Name: s.Name, Namespace: ns, PID: pid, Reason: reason})
	}
	return out, errors.Join(errs...)
}

// noStager is the Stager of a Compute that starts nothing.
type noStager struct{}

func (noStager) Stage(context.Context) (string, string, error) {
	return "", "", errors.New("nova: nothing to stage")
}
