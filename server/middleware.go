package server

import (
	"crypto/subtle"
	"strings"

	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/qwen3-lora/qwen3-server/server/apierror"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

const (
	ctxRequestID = "request_id"
	ctxError     = "error"
	ctxTokensIn  = "tokens_in"
	ctxTokensOut = "tokens_out"
	ctxAPIKey    = "api_key" // the request's key, once auth accepted it
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
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.request(route, c.Writer.Status())
		if c.Request.URL.Path == "/health" || c.Request.URL.Path == "/metrics" {
			log.Debug("request", fields...)
			return
		}
		log.Info("request", fields...)
	}
}

// limitBody caps request bodies (413 beyond server.max_body_bytes), except
// file uploads: batch input files are far larger, and createFile caps them
// at batch.max_file_bytes instead.
func (s *Server) limitBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil && s.cfg.MaxBodyBytes > 0 && !isUpload(c.Request) {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes)
		}
		c.Next()
	}
}

// auth requires "Authorization: Bearer <key>" on /v1 routes when API keys
// are configured. The comparison is constant-time.
func (s *Server) auth() gin.HandlerFunc {
	keys := make([][]byte, 0, len(s.cfg.APIKeys))
	for _, k := range s.cfg.APIKeys {
		keys = append(keys, []byte(k))
	}
	return func(c *gin.Context) {
		if len(keys) == 0 || c.Request.Method == http.MethodOptions {
			c.Next()
			return
		}
		h := c.GetHeader("Authorization")
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || token == "" {
			s.fail(c, apierror.Unauthorized("missing API key: send Authorization: Bearer <key>"))
			return
		}
		for _, k := range keys {
			if subtle.ConstantTimeCompare([]byte(token), k) == 1 {
				c.Set(ctxAPIKey, token)
				c.Next()
				return
			}
		}
		s.fail(c, apierror.Unauthorized("invalid API key"))
	}
}

// cors answers preflight requests and sets the CORS headers for the
// configured origins ("*" allows any).
func (s *Server) cors() gin.HandlerFunc {
	allowed := map[string]bool{}
	any := false
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			any = true
		}
		allowed[o] = true
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" || len(allowed) == 0 || !(any || allowed[origin]) {
			c.Next()
			return
		}
		h := c.Writer.Header()
		if any {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", "X-Request-Id, X-Sampling-Params, Retry-After")
		if c.Request.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}
