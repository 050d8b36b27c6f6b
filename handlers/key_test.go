package handlers

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/assert"

	"gin-sse-progress/auth"
)

// TestIDOfKey: the id a run that moved is resumed for is the one its key
// was made of, whatever the subject and the id hold.
func TestIDOfKey(t *testing.T) {
	for _, tc := range []struct{ subject, id string }{
		{"alice", "42"}, {"a:b", "c:d"}, {"", "5:x:y"}, {"ünï", "é"}, {"12:3", ":"},
	} {
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = httptest.NewRequestWithContext(t.Context(), "GET", "/", nil)
		if tc.subject != "" {
			ctx := context.WithValue(c.Request.Context(), requesterKey{}, requester{Identity: auth.Identity{Subject: tc.subject}})
			c.Request = c.Request.WithContext(ctx)
		}
		key := clientKey(c, tc.id)
		assert.Equal(t, tc.id, idOfKey(key, tc.subject != ""), "subject %q, id %q: key %q", tc.subject, tc.id, key)
	}
}
