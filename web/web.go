// Package web holds the demo page, embedded in the binary so that it runs
// from any directory.
package web

import "embed"

// FS holds the page's files under static/.
//
//go:embed static
var FS embed.FS

// Root is the folder of FS that the server serves at "/".
const Root = "static"
