package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

const (
	ctxRequestID = "request_id"
	ctxError     = "error"
	ctxTokensIn  = "tokens_in"
	ctxTokensOut = "tokens_out"
)

func itoa(n int) string { return strconv.Itoa(n) }

// requestID takes X-Request-Id from the client or makes one, and echoes it.
func (s *Server) requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-Id")
		if id == "" || len(id) > 128 {
			var b [8]byte
			rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

// accessLog writes one line per request: id, route, status, tokens, latency.
func (s *Server) accessLog() gin.HandlerFunc {
	log := s.log.Named("http")
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		fields := []zap.Field{
			zap.String("id", c.GetString(ctxRequestID)),
			zap.String("method", c.Request.Method),
			zap.String("path", c.Request.URL.Path),
			zap.Int("status", c.Writer.Status()),
			zap.Duration("latency", time.Since(start)),
		}
		if n, ok := c.Get(ctxTokensIn); ok {
			fields = append(fields, zap.Any("prompt_tokens", n))
		}
		if n, ok := c.Get(ctxTokensOut); ok {
			fields = append(fields, zap.Any("completion_tokens", n))
		}
		if e := c.GetString(ctxError); e != "" {
			fields = append(fields, zap.String("error", e))
		}
		if c.Request.URL.Path == "/health" || c.Request.URL.Path == "/metrics" {
			log.Debug("request", fields...)
			return
		}
		log.Info("request", fields...)
	}
}

// limitBody caps request bodies (413 beyond server.max_body_bytes).
func (s *Server) limitBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil && s.cfg.MaxBodyBytes > 0 {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
		}
		c.Next()
	}
}
