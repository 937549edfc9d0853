package rack_test

// The root's end-to-end tests open swift, swift+v1 and openstack URLs: the
// openstack package registers those schemes.
import _ "github.com/rackfork/rack/openstack"
