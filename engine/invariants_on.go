//go:build invariants

package engine

// invariantsOn turns on the expensive checks; `make test` builds with the
// invariants tag.
const invariantsOn = true
