package sse_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

func TestEventInvalidFieldsAreRefused(t *testing.T) {
	t.Parallel()
	for _, ev := range []sse.Event{
		{Name: "up\ndate"}, {Name: "up\rdate"}, {Name: "nul\x00"},
		{ID: "1\n2"}, {ID: "1\r"}, {ID: "1\x00"},
	} {
		prefix := []byte("kept")
		got, err := ev.AppendTo(prefix)
		assert.ErrorIs(t, err, sse.ErrInvalidField, "%q", ev)
		assert.Equal(t, "kept", string(got), "an invalid event appends nothing")

		var buf bytes.Buffer
		_, err = ev.WriteTo(&buf)
		assert.ErrorIs(t, err, sse.ErrInvalidField)
		assert.Zero(t, buf.Len())
	}
}

func TestAppendComment(t *testing.T) {
	t.Parallel()
	assert.Equal(t, ": ping\n\n", string(sse.AppendComment(nil, "ping")))
	assert.Equal(t, ":\n\n", string(sse.AppendComment(nil, "")))
	assert.Equal(t, ": a\n: b\n: c\n\n", string(sse.AppendComment(nil, "a\r\nb\rc")))
}

func TestAppendRetry(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "retry: 3000\n\n", string(sse.AppendRetry(nil, 3*time.Second)))
	assert.Equal(t, "retry: 250\n\n", string(sse.AppendRetry(nil, 250*time.Millisecond+999*time.Microsecond)))
}

func TestEventWriteToSurfacesWriterErrors(t *testing.T) {
	t.Parallel()
	want := errors.New("broken pipe")
	_, err := sse.Event{Data: "x"}.WriteTo(failingWriter{want})
	assert.ErrorIs(t, err, want)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

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
