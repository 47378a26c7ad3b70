// Package server is the HTTP front end (gin). A request enters through the
// middleware chain (request id, access log, auth, body limit), reaches a
// handler in this package, which decodes it (wire types in server/openai),
// hands it to the conversation layer to plan, runs the plan through the
// engine.Engine interface, and answers as JSON or as Server-Sent Events
// (stream.go); errors leave through apierror. It must not import an engine
// implementation (engine/scheduler, engine/llamacpp) or offline tools.
package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/configs"
	"github.com/qwen3-lora/qwen3-server/conversation"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
	"github.com/qwen3-lora/qwen3-server/web"
)

// Server serves the API. The engine may arrive after the server started
// listening (the model loads in the background): until then /health says 503.
type Server struct {
	cfg     configs.ServerConfig
	log     *zap.Logger
	started time.Time

	metrics *metrics

	planner *conversation.Planner

	mu       sync.RWMutex
	eng      engine.Engine
	registry *adapters.Registry
	batches  *batch.Store // nil: the Files and Batch API is off

	lines http.Handler // the router batch lines run through (batchexec.go)

	// Drain: once draining, /health fails and new API requests get 503;
	// inflight counts the API requests being handled, drained is closed
	// when it reaches zero while draining.
	drainMu  sync.Mutex
	draining bool
	inflight int
	drained  chan struct{}

	http     *http.Server
	listener net.Listener
	// metricsHTTP serves /metrics alone on server.metrics_addr (nil: on the
	// main listener).
	metricsHTTP     *http.Server
	metricsListener net.Listener
}

// New builds a server; Start listens.
func New(cfg configs.ServerConfig, sc configs.SamplingConfig, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	gin.SetMode(gin.ReleaseMode)
	planner := conversation.NewPlanner(conversation.Defaults{EnableThinking: sc.EnableThinking, ThinkingBudget: sc.ThinkingBudget,
		Thinking: sc.Thinking.Params(), NonThinking: sc.NonThinking.Params()})
	s := &Server{cfg: cfg, log: log, started: time.Now(), metrics: newMetrics(), planner: planner}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	s.lines = s.lineRoutes()
	if cfg.MetricsAddr != "" {
		s.metricsHTTP = &http.Server{Handler: s.metricsRoutes(), ReadHeaderTimeout: 10 * time.Second}
	}
	return s
}

// SetEngine makes the server ready.
func (s *Server) SetEngine(e engine.Engine) {
	s.mu.Lock()
	s.eng = e
	s.mu.Unlock()
}

func (s *Server) engine() engine.Engine {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.eng
}

// Handler exposes the routes (tests drive it with httptest).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// MetricsHandler exposes the metrics listener's routes (nil without
// server.metrics_addr).
func (s *Server) MetricsHandler() http.Handler {
	if s.metricsHTTP == nil {
		return nil
	}
	return s.metricsHTTP.Handler
}

// Start listens on cfg.Addr (and cfg.MetricsAddr) and serves in the
// background.
func (s *Server) Start() error {
	ln, err := s.serve(s.http, s.cfg.Addr, "listening")
	if err != nil {
		return err
	}
	s.listener = ln
	if s.metricsHTTP != nil {
		if s.metricsListener, err = s.serve(s.metricsHTTP, s.cfg.MetricsAddr, "metrics listening"); err != nil {
			s.http.Close()
			return err
		}
	}
	return nil
}

func (s *Server) serve(h *http.Server, addr, what string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := h.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", zap.String("addr", addr), zap.Error(err))
		}
	}()
	s.log.Info(what, zap.String("addr", ln.Addr().String()))
	return ln, nil
}

// Addr is the address actually listened on.
func (s *Server) Addr() string { return listenAddr(s.listener, s.cfg.Addr) }

// MetricsAddr is the metrics listener's address ("" without one).
func (s *Server) MetricsAddr() string { return listenAddr(s.metricsListener, s.cfg.MetricsAddr) }

func listenAddr(ln net.Listener, configured string) string {
	if ln == nil {
		return configured
	}
	return ln.Addr().String()
}

// Stop stops accepting connections and waits for requests in flight until
// ctx ends.
func (s *Server) Stop(ctx context.Context) error {
	if s.metricsHTTP != nil {
		defer s.metricsHTTP.Close() // scrapes are short; the API's drain is what waits
	}
	return s.http.Shutdown(ctx)
}

func (s *Server) routes() http.Handler {
	r := gin.New()
	r.Use(gin.Recovery(), s.requestID(), s.accessLog(), s.cors())
	r.GET("/health", s.health)
	r.GET("/health/live", s.live)
	if s.cfg.MetricsAddr == "" {
		r.GET("/metrics", s.metricsAuth(), s.metricsHandler)
	}
	api := r.Group("", s.admission(), s.auth(false), s.limitBody())
	api.POST("/tokenize", s.tokenize)
	api.POST("/detokenize", s.detokenize)
	api.POST("/apply-template", s.applyTemplate)
	v1 := api.Group("/v1")
	v1.GET("/models", s.models)
	v1.POST("/chat/completions", s.chatCompletions)
	v1.POST("/completions", s.completions)
	// Operator routes: they choose and show server-side paths.
	v1.GET("/adapters", s.auth(true), s.listAdapters)
	v1.POST("/adapters", s.auth(true), s.loadAdapter)
	v1.DELETE("/adapters/:name", s.auth(true), s.unloadAdapter)
	v1.POST("/files", s.createFile)
	v1.GET("/files", s.listFiles)
	v1.GET("/files/:id", byID(s, (*batch.Store).GetFile))
	v1.DELETE("/files/:id", byID(s, (*batch.Store).DeleteFile))
	v1.GET("/files/:id/content", s.fileContent)
	v1.POST("/batches", s.createBatch)
	v1.GET("/batches", s.listBatches)
	v1.GET("/batches/:id", byID(s, (*batch.Store).GetBatch))
	v1.POST("/batches/:id/cancel", byID(s, (*batch.Store).CancelBatch))
	if s.cfg.WebUI {
		page := gin.WrapH(web.Handler())
		r.GET("/", page)
		r.GET("/assets/*file", page)
	}
	r.NoRoute(s.noRoute)
	return r
}

// metricsRoutes is the metrics listener's: /metrics and nothing else.
func (s *Server) metricsRoutes() http.Handler {
	r := gin.New()
	r.Use(gin.Recovery())
	r.GET("/metrics", s.metricsAuth(), s.metricsHandler)
	r.NoRoute(s.noRoute)
	return r
}

// metricsAuth guards /metrics with an admin key under server.metrics_auth.
func (s *Server) metricsAuth() gin.HandlerFunc {
	if !s.cfg.MetricsAuth {
		return func(c *gin.Context) { c.Next() }
	}
	return s.auth(true)
}

func (s *Server) noRoute(c *gin.Context) {
	if c.Request.Method == http.MethodOptions {
		c.Status(http.StatusNoContent)
		return
	}
	s.fail(c, apierror.NotFound("not_found", "no route "+c.Request.Method+" "+c.Request.URL.Path))
}

// fail writes an API error and aborts the chain.
func (s *Server) fail(c *gin.Context, err error) {
	ae := apierror.From(err)
	if ae.RetryAfter > 0 {
		c.Header("Retry-After", itoa(ae.RetryAfter))
	}
	c.Set(ctxError, ae.Message)
	c.AbortWithStatusJSON(ae.Status, ae.Body())
}

// health is readiness (and the startup probe): 503 while the model loads
// and from the moment a drain begins, so that the load balancer stops
// sending requests here.
func (s *Server) health(c *gin.Context) {
	if s.isDraining() {
		c.Header("Retry-After", "1")
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
		return
	}
	e := s.engine()
	if e == nil {
		c.Header("Retry-After", "5")
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "loading"})
		return
	}
	st := e.Stats()
	c.JSON(http.StatusOK, gin.H{"status": "ok", "slots_idle": st.Slots - st.BusySlots, "slots_processing": st.BusySlots, "queue_depth": st.QueueDepth})
}

// live is liveness: the process serves HTTP, loading and draining
// included (failing it would have the kubelet kill a pod that is only
// busy loading or finishing its requests).
func (s *Server) live(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "alive"})
}

// modelDefaults is what a request with no sampling fields gets, the way
// the conversation layer resolves it (manifest m over the mode's preset).
func (s *Server) modelDefaults(m *adapters.Manifest) *openai.ModelDefaults {
	return &openai.ModelDefaults{EnableThinking: s.planner.ThinkingDefault(m), ThinkingBudget: s.planner.ThinkingBudget(),
		Thinking: s.planner.ModeSampling(m, true), NonThinking: s.planner.ModeSampling(m, false)}
}

func (s *Server) models(c *gin.Context) {
	e := s.engine()
	if e == nil {
		s.fail(c, apierror.Loading())
		return
	}
	info := e.Info()
	list := openai.ModelList{Object: "list", Data: []openai.Model{{
		ID: info.ID, Object: "model", Created: s.started.Unix(), OwnedBy: "qwen3-server", MaxModelLen: info.ContextSize,
		Defaults: s.modelDefaults(nil),
	}}}
	if reg := s.adapterRegistry(); reg != nil {
		for _, a := range reg.List() {
			parent := info.ID
			list.Data = append(list.Data, openai.Model{ID: a.Name, Object: "model", Created: a.LoadedAt.Unix(), OwnedBy: "qwen3-server", Parent: &parent, MaxModelLen: info.ContextSize,
				Defaults: s.modelDefaults(a.Manifest)})
		}
	}
	c.JSON(http.StatusOK, list)
}
