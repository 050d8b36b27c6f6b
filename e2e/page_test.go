package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// page is a browser tab on the server's page. It records what the page
// writes to the console and every request it sends; when the test ends it
// checks that there was no console message and that no request left the
// page's origin.
type page struct {
	ctx context.Context
	srv *server

	mu       sync.Mutex
	console  []string
	requests []string
	expected []string // console messages the test expects, by a part of them
}

// expectConsole lets console messages that contain part through the check
// at the end of the test.
func (p *page) expectConsole(part string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expected = append(p.expected, part)
}

// openPage opens the page in a new tab of the shared browser. setup runs
// before the page loads (to set the viewport, for example).
func openPage(t *testing.T, srv *server, setup ...chromedp.Action[chromedp.Void]) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(shared.browser)
	p := &page{ctx: ctx, srv: srv}
	require.NoError(t, chromedp.Listen(ctx, p.record))
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		unexpected := slices.DeleteFunc(slices.Clone(p.console), func(msg string) bool {
			return slices.ContainsFunc(p.expected, func(part string) bool { return strings.Contains(msg, part) })
		})
		assert.Empty(t, unexpected, "the page writes nothing else to the console")
		for _, u := range p.requests {
			assert.True(t, sameOrigin(srv.URL, u), "request leaves the page's origin: %s", u)
		}
		cancel()
	})
	p.do(t, append(setup, chromedp.Navigate(srv.URL+"/"))...)
	return p
}

// record keeps the events of interest. It runs on chromedp's reading
// goroutine, so it only appends.
func (p *page) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		p.console = append(p.console, fmt.Sprintf("console.%s %s", ev.Type, argsText(ev.Args)))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		p.console = append(p.console, fmt.Sprintf("exception: %s at %s:%d", text, d.URL, d.LineNumber+1))
	case *log.EventEntryAdded:
		p.console = append(p.console, fmt.Sprintf("%s %s: %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
	case *network.EventRequestWillBeSent:
		p.requests = append(p.requests, ev.Request.URL)
	}
}

func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = string(a.Value)
		if a.Description != "" {
			parts[i] = a.Description
		}
	}
	return strings.Join(parts, " ")
}

func sameOrigin(base, u string) bool {
	a, err1 := url.Parse(base)
	b, err2 := url.Parse(u)
	return err1 == nil && err2 == nil && a.Scheme == b.Scheme && a.Host == b.Host
}

// do runs the actions with a deadline, failing the test on an error.
func (p *page) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, actions...))
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](t *testing.T, p *page, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "evaluate %s", expr)
	return v
}

// waitFor waits until the JavaScript expression is true.
func (p *page) waitFor(t *testing.T, expr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(10*time.Millisecond)))
	require.NoError(t, err, "waiting for %s", expr)
}

func (p *page) text(t *testing.T, selector string) string {
	t.Helper()
	return eval[string](t, p, fmt.Sprintf(`document.querySelector(%q).innerText.trim()`, selector))
}

// waitOpen waits until the page's stream is open and its button on.
func (p *page) waitOpen(t *testing.T) {
	t.Helper()
	p.waitFor(t, `document.querySelector("#state").dataset.state === "OPEN" && !document.querySelector("#sse").disabled`)
}

// waitDone waits until the run has closed and the button is on again.
func (p *page) waitDone(t *testing.T) {
	t.Helper()
	p.waitFor(t, `document.querySelector("#state").dataset.state === "CLOSED" && !document.querySelector("#sse").disabled`)
}

// entry is one entry of the frame panel.
type entry struct {
	Class string `json:"class"`
	Text  string `json:"text"`
}

// panel returns the frame panel's entries, oldest first.
func (p *page) panel(t *testing.T) []entry {
	t.Helper()
	return eval[[]entry](t, p, `[...document.querySelectorAll("#frames li")].reverse().map((li) => ({
		class: li.className,
		text: li.querySelector("pre, span").textContent,
	}))`)
}

// frame is an event of the panel, parsed back from its wire form.
type frame struct {
	event, id, data string
}

// frames parses the panel's frames from the last "start" mark on, checking
// that each is written as on the wire: event, id, data lines.
func frames(t *testing.T, entries []entry) []frame {
	t.Helper()
	start := -1
	for i, e := range entries {
		if e.Class == "mark mark-post" {
			start = i
		}
	}
	require.GreaterOrEqual(t, start, 0, "the panel shows the POST that started the run")
	return parseFrames(t, entries[start+1:])
}

// parseFrames parses the frames among entries, checking that each is written
// as on the wire: event, id, data lines.
func parseFrames(t *testing.T, entries []entry) []frame {
	t.Helper()
	var out []frame
	for _, e := range entries {
		if !strings.HasPrefix(e.Class, "frame ") {
			continue
		}
		lines := strings.Split(strings.TrimSuffix(e.Text, "\n"), "\n")
		require.Len(t, lines, 3, "a frame has event, id and data lines: %q", e.Text)
		var f frame
		for i, field := range []*string{&f.event, &f.id, &f.data} {
			name, value, ok := strings.Cut(lines[i], ": ")
			require.True(t, ok, "a field line is name: value, got %q", lines[i])
			require.Equal(t, []string{"event", "id", "data"}[i], name)
			*field = value
		}
		assert.Equal(t, "frame frame-"+f.event, e.Class)
		out = append(out, f)
	}
	return out
}

// checkRun checks that the frames hold every count of a run exactly once, in
// order, with ids that increase by one, and end with close.
func checkRun(t *testing.T, id string, fs []frame) {
	t.Helper()
	require.NotEmpty(t, fs)
	var counts []int
	for i, f := range fs {
		if i > 0 {
			assert.Equal(t, fmt.Sprint(mustAtoi(t, fs[i-1].id)+1), f.id, "ids increase by one")
		}
		if f.event != "update" {
			continue
		}
		var d struct {
			ID    string `json:"id"`
			Count int    `json:"count"`
		}
		require.NoError(t, json.Unmarshal([]byte(f.data), &d))
		assert.Equal(t, id, d.ID)
		counts = append(counts, d.Count)
	}
	var want []int
	for n := 0; n <= 100; n += 5 {
		want = append(want, n)
	}
	assert.Equal(t, want, counts, "every count once, in order")
	assert.Equal(t, "close", fs[len(fs)-1].event)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "id %q", s)
	return n
}

// boxes returns where the page's blocks are, relative to the document, and
// the document's height: a page whose layout holds still returns the same
// numbers before and after a run. Inline text (the count, the state) may
// change its width within its block.
func (p *page) boxes(t *testing.T) []float64 {
	t.Helper()
	return eval[[]float64](t, p, `[...document.querySelectorAll("header, .lead, .run, .run > *, .facts > *, .wire, #frames, .explain")]
		.flatMap((el) => {
			const r = el.getBoundingClientRect();
			return [r.x + scrollX, r.y + scrollY, r.width, r.height];
		})
		.concat(document.documentElement.scrollHeight)`)
}

// layoutShift returns the page's cumulative layout shift that no input
// caused, as the browser measured it.
func (p *page) layoutShift(t *testing.T) float64 {
	t.Helper()
	return eval[float64](t, p, `new Promise((resolve) => {
		let sum = 0;
		new PerformanceObserver((list) => {
			for (const e of list.getEntries()) if (!e.hadRecentInput) sum += e.value;
		}).observe({ type: "layout-shift", buffered: true });
		setTimeout(() => resolve(sum), 200);
	})`)
}

func TestRunToCompletion(t *testing.T) {
	srv := startServer(t)
	p := openPage(t, srv, chromedp.EmulateViewport(1280, 900))
	p.waitOpen(t)
	id := p.text(t, "#client-id")
	assert.Equal(t, "Start", p.text(t, "#sse"))
	assert.Equal(t, 1, srv.health(t)["streams"])
	boxes := p.boxes(t)

	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `document.querySelector(".progress").textContent === "100"`)
	assert.Equal(t, 100, eval[int](t, p, `document.querySelector("#bar").value`))
	p.waitDone(t)
	assert.Equal(t, "Run again", p.text(t, "#sse"))
	assert.Equal(t, "21 updates · 0 missing · 0 repeated", p.text(t, "#tally"))
	checkRun(t, id, frames(t, p.panel(t)))
	assert.Equal(t, boxes, p.boxes(t), "nothing on the page moved or grew")

	// Run again, from the keyboard: a fresh stream, and a run whose ids go
	// on from the first.
	p.do(t, chromedp.Focus("#sse"), chromedp.KeyEvent("\r"))
	p.waitFor(t, `document.querySelector("#state").dataset.state === "OPEN"`)
	p.waitDone(t)
	second := frames(t, p.panel(t))
	checkRun(t, id, second)
	assert.Equal(t, "23", second[0].id)
	assert.Equal(t, "0", p.text(t, "#reconnects"), "a new EventSource is not a reconnect")

	assert.Less(t, p.layoutShift(t), 0.01, "frames arriving do not move the page")
}

// TestDropAndResume has the server drop the stream mid-run: the browser waits
// the retry delay, reconnects with Last-Event-ID, and the server resumes, so
// the panel holds every count exactly once.
func TestDropAndResume(t *testing.T) {
	srv := startServer(t, "-tick", "40ms")
	p := openPage(t, srv, chromedp.EmulateViewport(1280, 900))
	p.waitOpen(t)
	id := p.text(t, "#client-id")

	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `Number(document.querySelector(".progress").textContent) >= 20 && !document.querySelector("#drop").disabled`)
	p.do(t, chromedp.Click("#drop"))
	p.waitFor(t, `document.querySelector("#reconnects").textContent === "1"`)
	p.waitDone(t)

	entries := p.panel(t)
	checkRun(t, id, frames(t, entries))
	assert.Equal(t, "21 updates · 0 missing · 0 repeated", p.text(t, "#tally"))

	// The marks tell the story: the page asks for the drop, the stream ends
	// with an error, and the browser comes back naming the last event id it
	// saw. The close comes once the run is over.
	var marks []string
	for _, e := range entries {
		if strings.HasPrefix(e.Class, "mark ") {
			marks = append(marks, e.Class)
		}
	}
	assert.Equal(t, []string{"mark mark-open", "mark mark-post", "mark mark-drop",
		"mark mark-error", "mark mark-open", "mark mark-closed"}, marks)
	lost := slices.IndexFunc(entries, func(e entry) bool { return e.Class == "mark mark-error" })
	before := frames(t, entries[:lost])
	require.NotEmpty(t, before, "the drop came mid-run")
	back := entries[lost+1:][slices.IndexFunc(entries[lost+1:], func(e entry) bool { return e.Class == "mark mark-open" })]
	assert.Contains(t, back.Text, "Last-Event-ID: "+before[len(before)-1].id)
}

// TestPostMode reads the run with fetch, the stream being the answer to the
// POST that starts it: a drop mid-run is resumed by a POST with
// Last-Event-ID, so every count arrives once and the server runs the run
// once; the panel shows the retry: line and the heartbeat comments, which
// EventSource keeps to itself; "Run again" starts the next run.
func TestPostMode(t *testing.T) {
	srv := startServer(t, "-tick", "150ms", "-heartbeat", "100ms")
	p := openPage(t, srv, chromedp.EmulateViewport(1280, 900))
	p.waitOpen(t)
	id := p.text(t, "#client-id")

	p.do(t, chromedp.Click(`input[name="mode"][value="post"]`))
	p.waitFor(t, `document.querySelector("#state").dataset.state === "CLOSED" && !document.querySelector("#sse").disabled`)
	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `Number(document.querySelector(".progress").textContent) >= 20 && !document.querySelector("#drop").disabled`)
	p.do(t, chromedp.Click("#drop"))
	p.waitFor(t, `document.querySelector("#reconnects").textContent === "1"`)
	p.waitDone(t)

	entries := p.panel(t)
	checkRun(t, id, frames(t, entries))
	assert.Equal(t, "21 updates · 0 missing · 0 repeated", p.text(t, "#tally"))
	assert.True(t, slices.ContainsFunc(entries, func(e entry) bool {
		ms, ok := strings.CutPrefix(e.Text, "retry: ")
		n, err := strconv.Atoi(strings.Fields(ms + " x")[0])
		return e.Class == "raw raw-retry" && ok && err == nil && n >= 150 && n < 450
	}), "the panel shows the retry: line")
	assert.True(t, slices.ContainsFunc(entries, func(e entry) bool {
		return e.Class == "raw raw-comment" && strings.HasPrefix(e.Text, ": ping ")
	}), "the panel shows a heartbeat comment")
	back := slices.IndexFunc(entries, func(e entry) bool {
		return e.Class == "mark mark-open" && strings.Contains(e.Text, "Last-Event-ID")
	})
	require.GreaterOrEqual(t, back, 0, "the retry names the last id")
	drop := slices.IndexFunc(entries, func(e entry) bool { return e.Class == "mark mark-drop" })
	require.GreaterOrEqual(t, drop, 0)
	assert.Less(t, drop, back)

	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `document.querySelector("#state").dataset.state === "OPEN"`)
	p.waitDone(t)
	second := frames(t, p.panel(t))
	checkRun(t, id, second)
	assert.Equal(t, "23", second[0].id, "the next run's ids go on")
}

// TestDropBeforeStart drops a stream that has had no event: the browser
// reconnects with no Last-Event-ID, and the page says so.
func TestDropBeforeStart(t *testing.T) {
	srv := startServer(t)
	p := openPage(t, srv, chromedp.EmulateViewport(1280, 900))
	p.waitOpen(t)
	p.do(t, chromedp.Click("#drop"))
	p.waitFor(t, `document.querySelector("#reconnects").textContent === "1"`)
	entries := p.panel(t)
	back := entries[len(entries)-1]
	assert.Equal(t, "mark mark-open", back.Class)
	assert.Contains(t, back.Text, "with no Last-Event-ID")
	assert.NotContains(t, back.Text, "sending")
}

func TestChineseSwitch(t *testing.T) {
	srv := startServer(t)
	p := openPage(t, srv)
	p.waitOpen(t)
	assert.Equal(t, "Server-Sent Events, step by step", p.text(t, "h1"))
	assert.Equal(t, "中文", p.text(t, "#lang"))

	p.do(t, chromedp.Click("#lang"))
	assert.Equal(t, "zh-CN", eval[string](t, p, `document.documentElement.lang`))
	assert.Equal(t, "Server-Sent Events 服务器推送，一步一步看", p.text(t, "h1"))
	assert.Equal(t, "开始", p.text(t, "#sse"))
	assert.Equal(t, "断开连接", p.text(t, "#drop"))
	assert.Equal(t, "English", p.text(t, "#lang"))
	assert.Contains(t, p.panel(t)[0].Text, "流已连接", "marks already shown are written again")

	// The choice is remembered.
	p.do(t, chromedp.Reload())
	p.waitOpen(t)
	assert.Equal(t, "开始", p.text(t, "#sse"))

	// Back to English, from the keyboard.
	p.do(t, chromedp.Focus("#lang"), chromedp.KeyEvent(" "))
	assert.Equal(t, "Start", p.text(t, "#sse"))
	assert.Equal(t, "en", eval[string](t, p, `localStorage.getItem("lang")`))
}

// TestLeavingRemovesClient leaves the page; its pagehide handler sends
// GET /event/remove, so the server forgets the client at once rather than
// after the grace period (a minute here).
func TestLeavingRemovesClient(t *testing.T) {
	srv := startServer(t)
	p := openPage(t, srv)
	p.waitOpen(t)
	id := p.text(t, "#client-id")
	require.Equal(t, 1, srv.health(t)["clients"])

	p.do(t, chromedp.Navigate("about:blank"))
	require.Eventually(t, func() bool { return srv.health(t)["clients"] == 0 }, 5*time.Second, 20*time.Millisecond,
		"the page's remove request reaches the server")
	assert.Equal(t, http.StatusNotFound, srv.get(t, "/event/remove?id="+url.QueryEscape(id)).status)
	assert.Contains(t, srv.logs.String(), "client removed", "the server logged the page's remove")
}

// TestPhoneInDarkMode runs the page on a phone-sized screen with a dark
// color scheme: nothing is wider than the screen, the colors follow the
// scheme, and nothing moves as frames arrive.
func TestPhoneInDarkMode(t *testing.T) {
	srv := startServer(t)
	dark := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	})
	p := openPage(t, srv, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), dark)
	p.waitOpen(t)

	assert.Equal(t, "rgb(17, 17, 20)", eval[string](t, p, `getComputedStyle(document.body).backgroundColor`))
	assert.LessOrEqual(t, eval[int](t, p, `document.documentElement.scrollWidth`), 390, "no sideways scrolling")
	boxes := p.boxes(t)

	p.do(t, chromedp.Click("#sse"))
	p.waitDone(t)
	assert.Equal(t, boxes, p.boxes(t), "nothing on the page moved or grew")
	assert.Equal(t, "100", p.text(t, ".progress"))
	assert.LessOrEqual(t, eval[int](t, p, `document.documentElement.scrollWidth`), 390, "frames fit the screen")
	// A text node of a frame laid out on two lines is a token cut in two.
	assert.Zero(t, eval[int](t, p, `(() => {
		let cut = 0;
		for (const pre of document.querySelectorAll("#frames pre")) {
			for (const node of pre.childNodes) {
				if (node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) continue;
				const r = document.createRange();
				r.selectNodeContents(node);
				if (r.getClientRects().length > 1) cut++;
			}
		}
		return cut;
	})()`), "data lines wrap after a comma, never inside a token")
	assert.Less(t, p.layoutShift(t), 0.01, "frames arriving do not move the page")
}

// TestScreenshot takes the README's picture: the page mid-run, just after a
// drop and its resume, above the page after the run. `make screenshot` writes
// it to docs/screenshot.png; otherwise it goes to a temporary directory.
func TestScreenshot(t *testing.T) {
	const width, height = 1200, 860
	srv := startServer(t, "-tick", "120ms", "-retry", "500ms")
	p := openPage(t, srv, chromedp.EmulateViewport(width, height))
	p.waitOpen(t)

	p.do(t, chromedp.Click("#sse"))
	p.waitFor(t, `Number(document.querySelector(".progress").textContent) >= 25 && !document.querySelector("#drop").disabled`)
	p.do(t, chromedp.Click("#drop"))
	p.waitFor(t, `Number(document.querySelector(".progress").textContent) >= 50 && document.querySelector("#reconnects").textContent === "1"`)
	midRun := p.screenshot(t)
	p.waitDone(t)
	done := p.screenshot(t)

	path := *screenshotPath
	if path == "" {
		path = filepath.Join(t.TempDir(), "screenshot.png")
	}
	require.NoError(t, writeStacked(path, midRun, done))
	t.Logf("screenshot: %s", path)

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	require.NoError(t, err)
	assert.Equal(t, width, cfg.Width)
	assert.Equal(t, 2*height+screenshotGap, cfg.Height)
}

func (p *page) screenshot(t *testing.T) image.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return img
}

// screenshotGap is the height of the band between the two pictures.
const screenshotGap = 24

// writeStacked writes top above bottom, with a band between, as one PNG.
func writeStacked(path string, top, bottom image.Image) error {
	tb, bb := top.Bounds(), bottom.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, max(tb.Dx(), bb.Dx()), tb.Dy()+screenshotGap+bb.Dy()))
	draw.Draw(out, out.Bounds(), image.NewUniform(color.RGBA{0x88, 0x89, 0x90, 0xff}), image.Point{}, draw.Src)
	draw.Draw(out, tb.Sub(tb.Min), top, tb.Min, draw.Src)
	draw.Draw(out, bb.Sub(bb.Min).Add(image.Pt(0, tb.Dy()+screenshotGap)), bottom, bb.Min, draw.Src)

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(f, out); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
