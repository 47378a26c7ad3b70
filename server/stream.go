package server

// Server-Sent Events: the one writer every streaming endpoint uses, and how
// a stream fails.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

// failStream ends a generation that failed: nothing more when the client
// is gone (the engine already freed the slot), a normal HTTP error when no
// event went out yet (w may be nil: not streaming), else an in-band error
// event and [DONE]. param names the field a bad-input error points at.
func (s *Server) failStream(c *gin.Context, w *sseWriter, err error, param string) {
	if c.Request.Context().Err() != nil {
		c.Set(ctxError, "client disconnected")
		return
	}
	if w == nil || !w.started {
		s.fail(c, attachParam(err, param))
		return
	}
	ae := apierror.From(attachParam(err, param))
	c.Set(ctxError, ae.Message)
	w.event(ae.Body())
	w.done()
}

// sseWriter writes "data: <json>\n\n" events and flushes each; safe for
// several goroutines (the choices or prompts of one request).
type sseWriter struct {
	c       *gin.Context
	started bool
	mu      sync.Mutex
}

func (w *sseWriter) event(v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.started {
		h := w.c.Writer.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.c.Status(http.StatusOK)
		w.started = true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w.c.Writer, "data: %s\n\n", b); err != nil {
		return err
	}
	w.c.Writer.Flush()
	return nil
}

func (w *sseWriter) done() {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprint(w.c.Writer, "data: [DONE]\n\n")
	w.c.Writer.Flush()
}
