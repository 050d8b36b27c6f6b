// Package ssetest reads event streams the way a browser does, for tests.
//
// Reader follows the parsing rules of the WHATWG HTML standard
// ("9.2.6 Interpreting an event stream"): a leading byte order mark is
// skipped; lines end with CRLF, LF or CR; a line starting with a colon is a
// comment; one space after the field's colon is dropped; "data" lines are
// joined with LF; an "id" value containing NUL is ignored; "retry" is taken
// only when it is all ASCII digits; a blank line dispatches the event unless
// its data is empty; an event not ended by a blank line is discarded.
package ssetest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Event is a dispatched event, as a listener in the browser sees it.
type Event struct {
	Type string // "message" when the stream named none
	ID   string // the last event id string after this event
	Data string
}

// Reader parses an event stream.
type Reader struct {
	r       *bufio.Reader
	started bool

	// LastEventID is the last event id string, as EventSource keeps it.
	LastEventID string
	// Retry is the last valid "retry" value in milliseconds, or -1.
	Retry int64
	// Comments counts the comment lines read so far.
	Comments int

	eventType string
	data      strings.Builder
	hasData   bool
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReader(r), Retry: -1}
}

// Next returns the next dispatched event. At the end of the stream it returns
// io.EOF; an event left without its blank line is discarded, as browsers do.
func (r *Reader) Next() (Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return Event{}, err
		}
		if ev, ok := r.processLine(line); ok {
			return ev, nil
		}
	}
}

// NextBlock reads up to the next blank line, applying each field as Next
// does, and returns the event it dispatches, if any: ok is false for a
// block with no data, such as the retry block a stream starts with.
func (r *Reader) NextBlock() (ev Event, ok bool, err error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return Event{}, false, err
		}
		ev, ok := r.processLine(line)
		if line == "" {
			return ev, ok, nil
		}
	}
}

// readLine returns the next line without its line ending. A final line with
// no line ending is incomplete and reported as io.EOF.
func (r *Reader) readLine() (string, error) {
	if !r.started {
		r.started = true
		if b, err := r.r.Peek(3); err == nil && bytes.Equal(b, []byte("\uFEFF")) {
			_, _ = r.r.Discard(3)
		}
	}
	var line []byte
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "", io.EOF
			}
			return "", err
		}
		switch b {
		case '\n':
			return string(line), nil
		case '\r':
			if next, err := r.r.Peek(1); err == nil && next[0] == '\n' {
				_, _ = r.r.Discard(1)
			}
			return string(line), nil
		default:
			line = append(line, b)
		}
	}
}

// processLine applies one line and reports whether it dispatched an event.
func (r *Reader) processLine(line string) (Event, bool) {
	if line == "" {
		return r.dispatch()
	}
	if line[0] == ':' {
		r.Comments++
		return Event{}, false
	}
	field, value, found := strings.Cut(line, ":")
	if found {
		value = strings.TrimPrefix(value, " ")
	}
	switch field {
	case "event":
		r.eventType = value
	case "data":
		r.data.WriteString(value)
		r.data.WriteByte('\n')
		r.hasData = true
	case "id":
		if !strings.Contains(value, "\x00") {
			r.LastEventID = value
		}
	case "retry":
		if value != "" && strings.Trim(value, "0123456789") == "" {
			if n, err := strconv.ParseInt(value, 10, 64); err == nil {
				r.Retry = n
			}
		}
	}
	return Event{}, false
}

func (r *Reader) dispatch() (Event, bool) {
	data, hasData, typ := r.data.String(), r.hasData, r.eventType
	r.data.Reset()
	r.hasData = false
	r.eventType = ""
	if !hasData {
		return Event{}, false
	}
	if typ == "" {
		typ = "message"
	}
	return Event{Type: typ, ID: r.LastEventID, Data: strings.TrimSuffix(data, "\n")}, true
}

// Parse returns every event dispatched by the complete stream b.
func Parse(b []byte) ([]Event, *Reader, error) {
	r := NewReader(bytes.NewReader(b))
	var events []Event
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return events, r, nil
		}
		if err != nil {
			return events, r, err
		}
		events = append(events, ev)
	}
}
