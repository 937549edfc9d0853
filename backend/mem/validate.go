package mem

import "github.com/rackfork/rack/backend"

// Swift's default constraints (swift.conf [swift-constraints]); see
// backend/limits.go.
const (
	MaxObjectNameLength    = backend.MaxObjectNameLength
	MaxContainerNameLength = backend.MaxContainerNameLength
	MaxMetaCount           = backend.MaxMetaCount
	MaxMetaNameLength      = backend.MaxMetaNameLength
	MaxMetaValueLength     = backend.MaxMetaValueLength
	MaxMetaOverallSize     = backend.MaxMetaOverallSize
	MaxListLimit           = backend.MaxListLimit
)

var (
	checkContainerName = backend.ContainerNameProblem
	checkObjectName    = backend.ObjectNameProblem
	checkMetadata      = backend.MetadataProblem
	checkDelimiter     = backend.DelimiterProblem
)
