package e2e

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"gin-sse-progress/sseredis/redistest"
)

// TestRunStartedThroughAnotherInstance is the README's walk-through of
// scaling out: Redis and two instances. The page is served by A and holds
// its stream there; its run is started through B, as curl does in the
// README, and every count reaches the page.
//
// Then Redis goes away mid-run: the page shows the gap event; once Redis is
// back, empty, the reconnect opens with a gap (unknown client), and a
// click starts a run that completes.
func TestRunStartedThroughAnotherInstance(t *testing.T) {
	redis := redistest.Start(t)
	a := startServer(t, "-redis", redis.URL(), "-tick", "60ms")
	b := startServer(t, "-redis", redis.URL(), "-tick", "60ms")
	p := openPage(t, a, chromedp.EmulateViewport(1280, 900))
	p.waitOpen(t)
	id := p.text(t, "#client-id")

	resp := b.post(t, "/event/progress", `{"id":`+id+`}`)
	require.Equal(t, http.StatusAccepted, resp.status, string(resp.body))
	p.waitFor(t, `document.querySelector(".progress").textContent === "100"`)
	p.waitDone(t)
	checkRun(t, id, parseFrames(t, p.panel(t)))
	assert.Equal(t, 0, a.health(t)["runs"]+b.health(t)["runs"])

	// The next run, from the page's own button: the POST goes to A. While
	// Redis is away, the browser's reconnect may be answered 503.
	p.expectConsole("status of 503 (Service Unavailable)")
	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `document.querySelector("#state").dataset.state === "OPEN" &&
		Number(document.querySelector(".progress").textContent) >= 20 &&
		Number(document.querySelector(".progress").textContent) < 100`)
	redis.Stop()
	p.waitFor(t, `document.querySelector("#frames .mark-gap") !== null`)
	gap := p.panel(t)
	last := gap[len(gap)-1]
	for _, e := range gap {
		if e.Class == "mark mark-gap" {
			last = e
		}
	}
	assert.Contains(t, last.Text, "updates after id")
	assert.Contains(t, a.logs.String(), "redis link lost")

	redis.Restart()
	a.waitHealthy(t)
	b.waitHealthy(t)
	// Redis came back empty: the browser's reconnect names an id of a
	// client the registry no longer knows, and the stream says so first.
	p.waitFor(t, `[...document.querySelectorAll("#frames .mark-gap")].some((m) => m.textContent.includes("cannot resume after id"))`)
	p.waitFor(t, `document.querySelector("#state").dataset.state === "OPEN" && !document.querySelector("#sse").disabled`)
	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `document.querySelector(".progress").textContent === "100"`)
	p.waitDone(t)
	checkRun(t, id, frames(t, p.panel(t)))
}
