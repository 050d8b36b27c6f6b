package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// e2eSecret is the -auth-secret of the servers of these tests.
const e2eSecret = "a secret of the browser tests, 32 bytes or more"

// makeToken runs `gin-sse-progress token`, as the page tells a learner to.
func makeToken(t *testing.T, sub string, ttl time.Duration) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), shared.serverBin, "token", "-sub", sub, "-ttl", ttl.String())
	cmd.Env = append(os.Environ(), "AUTH_SECRET="+e2eSecret)
	out, err := cmd.Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// TestSignIn runs the page against a server that wants a token: it asks
// for one, signs in with a token made by the helper, and runs with a drop
// and its resume. The token lasts 3 s: the server ends the stream when it
// expires (with its 5 s leeway), the reconnect gets 401 and the page says
// so; a sign-in with a fresh token resumes the run, and every count
// arrives once. Sign-out clears the session.
func TestSignIn(t *testing.T) {
	srv := startServer(t, "-auth-secret", e2eSecret, "-tick", "600ms")
	p := openPage(t, srv, chromedp.EmulateViewport(1280, 900))
	p.expectConsole("401 (Unauthorized)")
	p.waitFor(t, `!document.querySelector("#auth").hidden && document.querySelector("#sse").disabled`)
	assert.Contains(t, p.text(t, "#who"), "A token is needed")

	p.do(t, chromedp.SetValue("#token", makeToken(t, "alice", 3*time.Second)), chromedp.Click("#sign-in"))
	p.waitOpen(t)
	assert.Contains(t, p.text(t, "#who"), "Signed in as alice")
	id := p.text(t, "#client-id")

	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `Number(document.querySelector(".progress").textContent) >= 10 && !document.querySelector("#drop").disabled`)
	p.do(t, chromedp.Click("#drop"))
	p.waitFor(t, `document.querySelector("#reconnects").textContent === "1"`)

	// The token runs out mid-run.
	p.waitFor(t, `document.querySelector("#who").textContent.includes("A token is needed")`)
	refused := p.panel(t)
	assert.Contains(t, refused[len(refused)-1].Text, "401")
	assert.Less(t, mustAtoi(t, p.text(t, ".progress")), 100, "the run was not over")

	p.do(t, chromedp.SetValue("#token", makeToken(t, "alice", time.Minute)), chromedp.Click("#sign-in"))
	p.waitDone(t)
	checkRun(t, id, frames(t, p.panel(t)))
	assert.Equal(t, "21 updates · 0 missing · 0 repeated", p.text(t, "#tally"))

	p.do(t, chromedp.Click("#sign-out"))
	p.waitFor(t, `document.querySelector("#who").textContent.includes("A token is needed")`)
	status := eval[int](t, p, `fetch("/auth/session").then((r) => r.status)`)
	assert.Equal(t, 401, status, "the cookie is gone")
}
