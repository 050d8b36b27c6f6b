package sse

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidField is returned for an event whose name or id contains CR, LF
// or NUL. A line break there would end the field early and let the rest of
// the value be read as another field or another event; a NUL makes browsers
// ignore an id.
var ErrInvalidField = errors.New("sse: event name or id contains CR, LF or NUL")

// Event is one message of an event stream.
//
// On the wire it is a block of "field: value" lines ended by a blank line:
//
//	event: update
//	id: 7
//	data: {"id":"42","count":30}
//
// The browser's EventSource dispatches it to listeners of its Name ("message"
// when Name is empty) and remembers its ID, which it sends back in the
// Last-Event-ID header when it reconnects.
type Event struct {
	// Name is the event type, the "event:" field. Empty means "message".
	Name string
	// ID is the "id:" field. Empty leaves the field out.
	ID string
	// Data is the payload. A line break in it (LF, CR or CRLF) starts a
	// new "data:" line; the browser joins the lines back with LF.
	Data string
}

// Validate reports whether e can be written without changing its meaning.
func (e Event) Validate() error {
	if strings.ContainsAny(e.Name, "\r\n\x00") || strings.ContainsAny(e.ID, "\r\n\x00") {
		return ErrInvalidField
	}
	return nil
}

// AppendTo appends the wire form of e to dst and returns the extended buffer.
// It allocates only when dst has too little room, so a caller that reuses
// its buffer encodes events without allocating. An invalid event appends
// nothing.
func (e Event) AppendTo(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	return appendEvent(dst, e.Name, e.ID, e.Data), nil
}

// appendEvent appends the block of an event whose name and id are valid.
func appendEvent(dst []byte, name, id, data string) []byte {
	if name != "" {
		dst = appendField(dst, "event", name)
	}
	if id != "" {
		dst = appendField(dst, "id", id)
	}
	// Every event has at least one data line: the browser drops an event
	// whose data buffer is empty, whatever its name.
	dst = appendLines(dst, "data", data)
	return append(dst, '\n')
}

// WriteTo writes the wire form of e to w in a single Write call.
func (e Event) WriteTo(w io.Writer) (int64, error) {
	buf, err := e.AppendTo(nil)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(buf)
	return int64(n), err
}

// Entry is an event as a registry logs it. Its id is its sequence number in
// the client's log, which the stream formats as it writes the event, so
// logging an event formats nothing.
type Entry struct {
	Name, Data string
}

// appendTo appends the event's block, with seq as its id, to dst. The id is
// formatted into a small array on the stack, so nothing is allocated.
func (e Entry) appendTo(dst []byte, seq uint64) []byte {
	var id [20]byte // the digits of the largest uint64
	return appendEvent(dst, e.Name, string(strconv.AppendUint(id[:0], seq, 10)), e.Data)
}

// GapEvent is the name of the event that tells a client that events after
// an id may be missing, and no server can send them. A stream starts with
// one when the client's Last-Event-ID is one the registry cannot continue
// from, and then goes on; it ends with one when its registry has lost track
// of the client's events, as a registry shared through a store does when
// its link to the store breaks. Its data is GapData. It has no id, so the
// browser's Last-Event-ID stays that of the last event it got.
const GapEvent = "gap"

// The reasons a gap event gives.
const (
	// ReasonUnknownClient: the client's Last-Event-ID names a client this
	// registry does not know (a restart, or Grace ran out).
	ReasonUnknownClient = "unknown client"
	// ReasonNotKept: the events after the client's Last-Event-ID are no
	// longer kept (a later run replaced them).
	ReasonNotKept = "the events after that id are no longer kept"
	// ReasonAhead: the client's Last-Event-ID is above any id this
	// registry sent the client; its ids go on from there.
	ReasonAhead = "the id is ahead of this server's"
	// ReasonLost: the registry lost the client's events, as a registry
	// shared through a store does when its link to it breaks.
	ReasonLost = "the registry lost its events; later ones may be missing"
	// ReasonRunLost: the run stopped with the instance that ran it, and
	// no other instance could go on with it.
	ReasonRunLost = "the run stopped with its instance"
)

// GapData returns the data of a gap event: {"reason": reason,
// "last_event_id": id}, where id, if not 0, is the last event the client
// is known to have: the one it sent, or the last the stream wrote.
func GapData(reason string, lastEventID uint64) string {
	b, _ := json.Marshal(struct {
		Reason      string `json:"reason"`
		LastEventID uint64 `json:"last_event_id,omitempty"`
	}{reason, lastEventID}) // a string and a number always marshal
	return string(b)
}

// AppendComment appends a comment block to dst: each line of text prefixed
// with a colon, then a blank line. The browser ignores comments; they keep an
// idle connection from being closed by proxies and load balancers.
func AppendComment(dst []byte, text string) []byte {
	return append(appendLines(dst, "", text), '\n')
}

// AppendRetry appends a "retry:" block to dst: the time, in whole
// milliseconds, that the browser waits before it reconnects a dropped stream.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, "\n\n"...)
}

// appendLines appends one name field for each line of text. LF, CR and CRLF
// all end a line, as they do for the parser.
func appendLines(dst []byte, name, text string) []byte {
	for {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			return appendField(dst, name, text)
		}
		dst = appendField(dst, name, text[:i])
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++ // CRLF is one line break, not two
		}
		text = text[i+1:]
	}
}

// appendField appends "name: value\n". An empty name makes a comment line.
func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':')
	if value != "" {
		// The parser strips one space after the colon, so a value that
		// itself starts with a space keeps it.
		dst = append(dst, ' ')
		dst = append(dst, value...)
	}
	return append(dst, '\n')
}
