package swift_test

import (
	"github.com/rackfork/rack/backend/swift"
	"github.com/rackfork/rack/openstack"
)

// The live Keystone tests read their cloud as rack does: with the openstack
// package, which owns clouds.yaml and OS_*.
func init() { swift.CloudConfigForTest = openstack.CloudConfig }
