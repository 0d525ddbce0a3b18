//go:build tools

// Package tools pins Open Policy Agent, which bench/opa.sh builds from its Go
// module (github.com/open-policy-agent/opa) for the side-by-side benchmark.
package tools

import _ "github.com/open-policy-agent/opa"
