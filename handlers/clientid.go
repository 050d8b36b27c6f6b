package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// maxIDLen is the longest client id, in bytes.
const maxIDLen = 128

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER. A larger number
// id may not print as the digits the page put in its query string.
const maxSafeInteger = 1<<53 - 1

// validateID checks a client id: 1 to 128 bytes of UTF-8 with no control
// character. Ids travel in query strings and JSON, and come back in the data
// of every event; a line break in one must never reach the stream.
func validateID(id string) error {
	switch {
	case id == "":
		return errors.New("id is missing or empty")
	case len(id) > maxIDLen:
		return fmt.Errorf("id is %d bytes long; the limit is %d", len(id), maxIDLen)
	case !utf8.ValidString(id):
		return errors.New("id is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Errorf("id contains the control character %U", r)
		}
	}
	return nil
}

// idFromJSON returns the client id named by the raw JSON value of a
// request's "id" member: a string, or an integer, which names the same
// client as its decimal digits (the Koa page sends new Date().getTime()).
func idFromJSON(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", errors.New(`body has no "id"`)
	}
	var id string
	switch c := raw[0]; {
	case c == '"':
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", fmt.Errorf("id: %w", err)
		}
	case c == '-' || ('0' <= c && c <= '9'):
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < -maxSafeInteger || n > maxSafeInteger {
			return "", fmt.Errorf("id %s is not an integer between -(2^53-1) and 2^53-1", raw)
		}
		id = strconv.FormatInt(n, 10)
	default:
		return "", fmt.Errorf("id must be a string or a number, not %s", jsonKind(c))
	}
	return id, validateID(id)
}

// jsonKind names the JSON type of a value by its first byte.
func jsonKind(c byte) string {
	switch c {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "that"
}
