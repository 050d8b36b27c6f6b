package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEightTabsOverHTTP2 serves the page over HTTPS, where the server
// speaks HTTP/2, opens it in eight tabs of one browser and drives every
// tab's run to 100 at once. Over HTTP/1.1 a browser opens at most six
// connections to an origin, and each open stream holds one: the seventh
// tab's stream would wait. Over HTTP/2 they all share one connection.
func TestEightTabsOverHTTP2(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.CommandContext(t.Context(), shared.serverBin, "cert", "-out", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	srv := startServer(t, "-tls-cert", filepath.Join(dir, "localhost.crt"), "-tls-key", filepath.Join(dir, "localhost.key"),
		"-tick", "150ms")
	require.True(t, strings.HasPrefix(srv.URL, "https://"), srv.URL)

	const tabs = 8
	pages := make([]*page, tabs)
	for i := range pages {
		pages[i] = openPage(t, srv, chromedp.EmulateViewport(1024, 768))
	}
	for _, p := range pages {
		p.waitOpen(t)
		assert.Equal(t, "h2", eval[string](t, p, `performance.getEntriesByType("navigation")[0].nextHopProtocol`))
	}
	assert.Equal(t, tabs, srv.health(t)["streams"], "every tab's stream is open at once")

	for _, p := range pages {
		p.do(t, chromedp.Click("#sse"))
	}
	// The runs go at once; the tabs are read in turn.
	for _, p := range pages {
		p.waitDone(t)
		checkRun(t, p.text(t, "#client-id"), frames(t, p.panel(t)))
	}
}
