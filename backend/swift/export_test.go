package swift

import "github.com/gophercloud/gophercloud/v2"

// KeystoneTestConfig is keystoneTestConfig for the package's external tests.
var KeystoneTestConfig = keystoneTestConfig

// AuthOptionsForTest exposes the gophercloud options a Config makes.
func AuthOptionsForTest(cfg Config) gophercloud.AuthOptions { return cfg.authOptions() }
