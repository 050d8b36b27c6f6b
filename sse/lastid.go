package sse

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// ErrBadLastEventID is returned by LastEventID for a value that is not an id
// this package hands out (a decimal number below 2^53).
var ErrBadLastEventID = errors.New("sse: invalid last event id")

// LastEventID returns the id of the last event a reconnecting client has
// seen, or 0 for none. Browsers send it in the Last-Event-ID header; polyfills
// that cannot set headers on their request (event-source-polyfill, for one)
// send it as the lastEventId query parameter. The header wins.
func LastEventID(r *http.Request) (uint64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get("lastEventId")
	}
	if v == "" {
		return 0, nil
	}
	// Ids stay below 2^53 so that JavaScript numbers hold them exactly.
	n, err := strconv.ParseUint(v, 10, 53)
	if err != nil {
		return 0, fmt.Errorf("%w %q", ErrBadLastEventID, v)
	}
	return n, nil
}
