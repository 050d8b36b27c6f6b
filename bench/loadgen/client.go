package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// client is one SSE client: a raw connection that sends its GET and reads
// the response with http.ReadResponse. A net/http Transport would add two
// goroutines and its own buffers per connection; this is as lean as a
// browser's connection is to the server, and leaner on the generator's side.
type client struct {
	id       string
	instance int // the -url index of the instance holding the stream
	conn     net.Conn
	body     *bufio.Reader

	// Set by open.
	connect time.Duration // from the dial to the response's headers

	// Set by the POST that starts the run, in elapsed time since the
	// generator's start.
	posted   time.Duration // the request is sent
	answered time.Duration // its answer has arrived
	status   int           // the answer's status, 0 if there was none

	// Set by read. arrived[i] is when the update with count i*step came,
	// or 0.
	arrived    []time.Duration
	outOfOrder int // updates whose count is below one already seen
	duplicates int // updates whose count was seen before
	foreign    int // updates for another client's id
	closed     bool
	heartbeats int
	err        error // the first thing wrong with the stream, if any
}

// open connects, sends the stream's GET and reads the response's headers.
func (c *client) open(ctx context.Context, base *url.URL) (err error) {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", base.Host)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = conn.Close() // err says what went wrong
		}
	}()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	u := endpoint(base, "/event/push")
	u.RawQuery = url.Values{"id": {c.id}}.Encode()
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\n" +
		"Host: " + base.Host + "\r\n" +
		"Accept: text/event-stream\r\n" +
		"Cache-Control: no-cache\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	// The body is the stream: read reads it, and closing conn ends it.
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), nil) //nolint:bodyclose // see above
	if err != nil {
		return err
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		return fmt.Errorf("GET %s: %s, Content-Type %q", u.RequestURI(), resp.Status, ct)
	}
	c.connect = time.Since(start)
	c.conn = conn
	// The body undoes the chunked encoding; the events are read from it.
	c.body = bufio.NewReaderSize(resp.Body, 1<<10)
	return nil
}

// endpoint returns the URL of path on the server at base.
func endpoint(base *url.URL, path string) *url.URL {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return &u
}

// read reads the stream until it ends, recording each update's arrival. It
// parses the fields the server writes (event, data, comments; id and retry
// are read past), with LF line ends, and allocates nothing per event, so
// that the generator's own garbage collector stays out of the timings.
func (c *client) read(since func() time.Duration, step int) {
	defer func() { _ = c.conn.Close() }() // the stream is over either way
	c.arrived = make([]time.Duration, 100/step+1)
	// An update's data is {"id":ID,"count":N}, with ID as a JSON string.
	quoted, _ := json.Marshal(c.id) // marshalling a string cannot fail
	prefix := []byte(`{"id":` + string(quoted) + `,"count":`)
	var (
		event []byte // the event type, in a buffer of its own
		data  []byte
		top   = -1 // the highest count seen
	)
	for {
		line, err := c.body.ReadSlice('\n')
		if err != nil {
			if !c.closed || !errors.Is(err, io.EOF) {
				c.fail(fmt.Errorf("stream ended before its close: %w", err))
			}
			return
		}
		line = line[:len(line)-1]
		switch name, value, _ := bytes.Cut(line, []byte(": ")); {
		case len(line) == 0: // the end of an event
			switch string(event) {
			case "update":
				c.update(since(), data, prefix, step, &top)
			case "close":
				c.closed = true
			}
			event, data = event[:0], data[:0]
		case line[0] == ':':
			c.heartbeats++
		case string(name) == "event":
			event = append(event[:0], value...)
		case string(name) == "data":
			data = append(data, value...)
		}
	}
}

// update records one update event that arrived at t. Its data must be
// prefix, a count and a closing brace.
func (c *client) update(t time.Duration, data, prefix []byte, step int, top *int) {
	digits, ok := bytes.CutPrefix(data, prefix)
	if !ok {
		if bytes.HasPrefix(data, []byte(`{"id":`)) {
			c.foreign++
			return
		}
		c.fail(fmt.Errorf("update %q is not {\"id\":%q,\"count\":N}", data, c.id))
		return
	}
	digits, ok = bytes.CutSuffix(digits, []byte("}"))
	count, err := strconv.Atoi(string(digits)) // no allocation: the string does not escape
	if !ok || err != nil || count < 0 || count > 100 || count%step != 0 {
		c.fail(fmt.Errorf("update %q: the count is not a multiple of %d up to 100", data, step))
		return
	}
	i := count / step
	switch {
	case c.arrived[i] != 0:
		c.duplicates++
	case count < *top:
		c.outOfOrder++
		c.arrived[i] = t
	default:
		c.arrived[i] = t
	}
	*top = max(*top, count)
}

// fail records err, unless an earlier error is recorded.
func (c *client) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// start POSTs the run for c and records when it was sent and answered.
func (c *client) start(ctx context.Context, hc *http.Client, progressURL string, since func() time.Duration) error {
	body, _ := json.Marshal(map[string]string{"id": c.id}) // a map of strings always marshals
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, progressURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	c.posted = since()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end below
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	c.answered, c.status = since(), resp.StatusCode
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST %s for %s: %s %s", progressURL, c.id, resp.Status, strings.TrimSpace(string(answer)))
	}
	return nil
}
