package server

import (
	"context"
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

// Drain is how the server stops without cutting requests (SIGTERM, a pod
// leaving its Deployment): readiness fails at once, new API requests are
// answered 503 with Retry-After (the gateway retries them on another
// replica), and the requests already running finish. The listener stays
// open meanwhile: closing it would turn those 503s into refused
// connections. Drain returns when no request runs, or with ctx's error
// and the number still running; Stop then closes the listeners.
func (s *Server) Drain(ctx context.Context) error {
	s.drainMu.Lock()
	s.draining = true
	if s.inflight == 0 {
		s.drainMu.Unlock()
		return nil
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	done := s.drained
	s.drainMu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.drainMu.Lock()
		n := s.inflight
		s.drainMu.Unlock()
		return fmt.Errorf("%d requests still running: %w", n, ctx.Err())
	}
}

func (s *Server) isDraining() bool {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	return s.draining
}

// admission counts the API requests in flight for Drain and refuses new
// ones once it began.
func (s *Server) admission() gin.HandlerFunc {
	return func(c *gin.Context) {
		s.drainMu.Lock()
		if s.draining {
			s.drainMu.Unlock()
			// The client's connection is not kept for another request.
			c.Header("Connection", "close")
			s.fail(c, apierror.ShuttingDown())
			return
		}
		s.inflight++
		s.drainMu.Unlock()
		defer func() {
			s.drainMu.Lock()
			if s.inflight--; s.inflight == 0 && s.drained != nil {
				close(s.drained)
				s.drained = nil
			}
			s.drainMu.Unlock()
		}()
		c.Next()
	}
}
