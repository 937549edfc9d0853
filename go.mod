module github.com/rackfork/rack

go 1.24.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/gophercloud/gophercloud/v2 v2.10.0
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/ncw/swift/v2 v2.0.5
	golang.org/x/sync v0.17.0
	golang.org/x/sys v0.37.0
	golang.org/x/term v0.36.0
	gopkg.in/yaml.v2 v2.4.0
)

require github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
