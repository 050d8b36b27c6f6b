package sse_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"gin-sse-progress/sse"
)

func TestEventAppendTo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		event sse.Event
		want  string
	}{
		{"data only", sse.Event{Data: "hi"}, "data: hi\n\n"},
		{"all fields", sse.Event{Name: "update", ID: "7", Data: `{"count":30}`},
			"event: update\nid: 7\ndata: {\"count\":30}\n\n"},
		{"empty data keeps one data line", sse.Event{Name: "close"}, "event: close\ndata:\n\n"},
		{"LF splits data", sse.Event{Data: "a\nb"}, "data: a\ndata: b\n\n"},
		{"CR splits data", sse.Event{Data: "a\rb"}, "data: a\ndata: b\n\n"},
		{"CRLF is one break", sse.Event{Data: "a\r\nb"}, "data: a\ndata: b\n\n"},
		{"LFCR is two breaks", sse.Event{Data: "a\n\rb"}, "data: a\ndata:\ndata: b\n\n"},
		{"trailing break keeps an empty line", sse.Event{Data: "a\n"}, "data: a\ndata:\n\n"},
		{"leading space is kept", sse.Event{Data: " a"}, "data:  a\n\n"},
		{"colon in data", sse.Event{Data: "a: b"}, "data: a: b\n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.event.AppendTo(nil)
			if err != nil || string(got) != tc.want {
				t.Errorf("AppendTo = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestEventInvalidFieldsAreRefused(t *testing.T) {
	t.Parallel()
	for _, ev := range []sse.Event{
		{Name: "up\ndate"}, {Name: "up\rdate"}, {Name: "nul\x00"},
		{ID: "1\n2"}, {ID: "1\r"}, {ID: "1\x00"},
	} {
		got, err := ev.AppendTo([]byte("kept"))
		if !errors.Is(err, sse.ErrInvalidField) || string(got) != "kept" {
			t.Errorf("%q: AppendTo = %q, %v; want it refused, appending nothing", ev, got, err)
		}
		var buf bytes.Buffer
		if _, err := ev.WriteTo(&buf); !errors.Is(err, sse.ErrInvalidField) || buf.Len() != 0 {
			t.Errorf("%q: WriteTo wrote %q, %v; want it refused, writing nothing", ev, buf.Bytes(), err)
		}
	}
}

func TestAppendComment(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]string{
		"ping":      ": ping\n\n",
		"":          ":\n\n",
		"a\r\nb\rc": ": a\n: b\n: c\n\n",
	} {
		if got := string(sse.AppendComment(nil, text)); got != want {
			t.Errorf("AppendComment(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestAppendRetry(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		3 * time.Second: "retry: 3000\n\n",
		250*time.Millisecond + 999*time.Microsecond: "retry: 250\n\n",
	} {
		if got := string(sse.AppendRetry(nil, d)); got != want {
			t.Errorf("AppendRetry(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestEventWriteToSurfacesWriterErrors(t *testing.T) {
	t.Parallel()
	want := errors.New("broken pipe")
	if _, err := (sse.Event{Data: "x"}).WriteTo(failingWriter{want}); !errors.Is(err, want) {
		t.Errorf("WriteTo = %v, want %v", err, want)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestGapData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		reason string
		id     uint64
		want   string
	}{
		{sse.ReasonLost, 0, `{"reason":"` + sse.ReasonLost + `"}`},
		{sse.ReasonUnknownClient, 41, `{"reason":"unknown client","last_event_id":41}`},
		{`a "quoted" <reason>`, 1<<53 - 1, `{"reason":"a \"quoted\" \u003creason\u003e","last_event_id":9007199254740991}`},
	} {
		if got := sse.GapData(tc.reason, tc.id); got != tc.want {
			t.Errorf("GapData = %s, want %s", got, tc.want)
		}
	}
}

func ExampleEvent_WriteTo() {
	ev := sse.Event{Name: "update", ID: "3", Data: "{\"id\":\"42\",\n\"count\":10}"}
	if _, err := ev.WriteTo(os.Stdout); err != nil {
		fmt.Println(err)
	}
	// Output:
	// event: update
	// id: 3
	// data: {"id":"42",
	// data: "count":10}
}
