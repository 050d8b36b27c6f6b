module gin-sse-progress/e2e

go 1.26.0

require (
	gin-sse-progress v0.0.0
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

// The browser tests drive the app in this repository, not a published one.
replace gin-sse-progress => ../
