package sse_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gin-sse-progress/sse"
	"gin-sse-progress/sse/ssetest"
)

// FuzzEventRoundTrip checks that any event either is refused or parses back,
// by the WHATWG rules, to exactly one event with the same fields: no input
// injects a field or a second event. Line breaks in data come back as LF,
// since the format cannot tell LF, CR and CRLF apart.
func FuzzEventRoundTrip(f *testing.F) {
	seeds := [][3]string{
		{"update", "7", `{"id":"42","count":30}`},
		{"", "", ""},
		{"close", "22", ""},
		{"a", "1", "line\nline"},
		{"a", "1", "cr\rcrlf\r\nlf\n"},
		{"x", "1", "\n\n\nid: 99\nevent: evil\n\ndata: injected"},
		{"up\ndate", "1", "x"},
		{"a", "1\r2", "x"},
		{"a", "nul\x00", "x"},
		{" spaced", " 1", " data"},
		{"colon:name", "id:1", ": not a comment"},
		{"\uFEFFbom", "1", "\uFEFFdata"},
		{"a", "1", "\xff\xfe invalid utf-8"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, name, id, data string) {
		ev := sse.Event{Name: name, ID: id, Data: data}
		wire, err := ev.AppendTo(nil)
		if strings.ContainsAny(name+id, "\r\n\x00") {
			if !errors.Is(err, sse.ErrInvalidField) || len(wire) != 0 {
				t.Fatalf("event %q: got %q, %v; want it refused", ev, wire, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("event %q: %v", ev, err)
		}

		events, r, err := ssetest.Parse(wire)
		if err != nil {
			t.Fatalf("parse %q: %v", wire, err)
		}
		if len(events) != 1 {
			t.Fatalf("%q parsed to %d events: %q", wire, len(events), events)
		}
		want := ssetest.Event{Type: name, ID: id, Data: normalizeBreaks(data)}
		if want.Type == "" {
			want.Type = "message"
		}
		if events[0] != want {
			t.Fatalf("%q parsed to %q, want %q", wire, events[0], want)
		}
		if r.Retry != -1 || r.Comments != 0 {
			t.Fatalf("%q set retry %d or held %d comments", wire, r.Retry, r.Comments)
		}
	})
}

func normalizeBreaks(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// FuzzCommentAndRetry checks the two blocks that are not events: a comment
// of any text stays comments, one per line, with no event and no field, and
// a retry block reads back as the milliseconds it was given.
func FuzzCommentAndRetry(f *testing.F) {
	f.Add("ping", uint32(3000))
	f.Add("", uint32(0))
	f.Add("a\nb\rc\r\nd", uint32(1))
	f.Add("\ndata: injected\n\nevent: evil\n", uint32(1500))
	f.Add("retry: 1", uint32(7))
	f.Fuzz(func(t *testing.T, text string, ms uint32) {
		wire := sse.AppendComment(nil, text)
		wire = sse.AppendRetry(wire, time.Duration(ms)*time.Millisecond)

		events, r, err := ssetest.Parse(wire)
		if err != nil {
			t.Fatalf("parse %q: %v", wire, err)
		}
		if len(events) != 0 {
			t.Fatalf("%q parsed to events %q", wire, events)
		}
		if lines := strings.Count(normalizeBreaks(text), "\n") + 1; r.Comments != lines {
			t.Fatalf("%q held %d comments, want %d", wire, r.Comments, lines)
		}
		if r.Retry != int64(ms) {
			t.Fatalf("%q set retry %d, want %d", wire, r.Retry, ms)
		}
	})
}
