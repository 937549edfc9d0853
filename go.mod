module github.com/rackfork/rack

go 1.24

require (
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/ncw/swift/v2 v2.0.5
)

require github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
