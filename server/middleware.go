package server

import (
	"crypto/subtle"
	"strings"

	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/qwen3-lora/qwen3-server/configs"
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

// role is what a request's key allows.
type role int

const (
	roleNone  role = iota // no key, or not one of ours
	roleUser              // an API key: the inference routes
	roleAdmin             // an admin key: those and the operator routes
)

// keyring holds the configured keys. With none at all the server is open
// (a local server); admin keys alone leave the inference routes open and
// guard only the operator routes.
type keyring struct{ api, admin [][]byte }

func newKeyring(cfg configs.ServerConfig) keyring {
	var k keyring
	for _, key := range cfg.APIKeys {
		k.api = append(k.api, []byte(key))
	}
	for _, key := range cfg.AdminKeys {
		k.admin = append(k.admin, []byte(key))
	}
	return k
}

func (k keyring) open() bool { return len(k.api) == 0 && len(k.admin) == 0 }

// roleOf compares token with every key in constant time, so the answer's
// timing tells nothing about which keys exist.
func (k keyring) roleOf(token []byte) role {
	r := roleNone
	for _, key := range k.api {
		if subtle.ConstantTimeCompare(token, key) == 1 {
			r = roleUser
		}
	}
	for _, key := range k.admin {
		if subtle.ConstantTimeCompare(token, key) == 1 {
			r = roleAdmin
		}
	}
	return r
}

// auth requires "Authorization: Bearer <key>" when keys are configured:
// an API or admin key for the inference routes (none needed when only
// admin keys are configured), an admin key for the operator routes
// (admin: adapter loading, listing and unloading; /metrics with
// server.metrics_auth). A valid API key on an operator route gets 403, a
// missing or unknown key 401.
func (s *Server) auth(admin bool) gin.HandlerFunc {
	keys := newKeyring(s.cfg)
	return func(c *gin.Context) {
		if keys.open() || c.Request.Method == http.MethodOptions || (!admin && len(keys.api) == 0) {
			c.Next()
			return
		}
		token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok || token == "" {
			s.fail(c, apierror.Unauthorized("missing API key: send Authorization: Bearer <key>"))
			return
		}
		switch r := keys.roleOf([]byte(token)); {
		case r == roleAdmin || (r == roleUser && !admin):
			c.Set(ctxAPIKey, token) // the owner of the batch objects it creates
			c.Next()
		case r == roleUser && len(keys.admin) == 0:
			s.fail(c, apierror.Forbidden("admin_key_required", c.Request.Method+" "+c.FullPath()+" is an operator route and this server has no admin keys (server.admin_keys)"))
		case r == roleUser:
			s.fail(c, apierror.Forbidden("admin_key_required", c.Request.Method+" "+c.FullPath()+" needs an admin key (server.admin_keys); API keys may use the inference routes"))
		default:
			s.fail(c, apierror.Unauthorized("invalid API key"))
		}
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
