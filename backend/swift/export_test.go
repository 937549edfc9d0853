package swift

import (
	"errors"

	"github.com/gophercloud/gophercloud/v2"
)

// KeystoneTestConfig is keystoneTestConfig for the package's external tests.
var KeystoneTestConfig = keystoneTestConfig

// AuthOptionsForTest exposes the gophercloud options a Config makes.
func AuthOptionsForTest(cfg Config) gophercloud.AuthOptions { return cfg.authOptions() }

// CloudConfigForTest reads a cloud's Config from clouds.yaml or OS_* for
// the live Keystone tests. Reading clouds.yaml is the openstack package's
// job, which imports this one: the external test package sets it
// (cloud_ext_test.go).
var CloudConfigForTest func(cloud string) (Config, error)

func cloudConfigForTest(cloud string) (Config, error) {
	if CloudConfigForTest == nil {
		return Config{}, errors.New("swift tests: CloudConfigForTest unset")
	}
	return CloudConfigForTest(cloud)
}
