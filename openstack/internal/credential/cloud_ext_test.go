package credential_test

import (
	"github.com/rackfork/rack/openstack"
	"github.com/rackfork/rack/openstack/internal/credential"
)

// The live tests read their cloud as rack does.
func init() { credential.CloudConfigForTest = openstack.CloudConfig }
