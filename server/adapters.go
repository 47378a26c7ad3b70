package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/adapters"
	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
	"github.com/qwen3-lora/qwen3-server/server/openai"
)

// SetAdapters enables the adapter endpoints and per-request adapters.
func (s *Server) SetAdapters(r *adapters.Registry) {
	s.mu.Lock()
	s.registry = r
	s.mu.Unlock()
}

func (s *Server) adapterRegistry() *adapters.Registry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.registry
}

// resolveModel maps the request's "model" (base id, an adapter name, or
// "base:adapter" as vLLM and SGLang write it) and its optional "lora" list
// (llama-server's convention, for scales and stacking) to adapters. The
// returned release must be called when the request ends.
//
// The manifest returned is the adapter.yaml of the adapter named by
// "model" (nil for the base or when it has none).
func (s *Server) resolveModel(e engine.Engine, model string, lora []openai.LoraRef) ([]engine.AdapterUse, *adapters.Manifest, func(), string, error) {
	base := e.Info().ID
	var names []openai.LoraRef
	switch {
	case model == "" || model == base:
	case strings.HasPrefix(model, base+":"):
		names = append(names, openai.LoraRef{Name: strings.TrimPrefix(model, base+":")})
	default:
		if s.adapterRegistry() == nil {
			return nil, nil, nil, "", apierror.NotFound("model_not_found", fmt.Sprintf("model %q does not exist; GET /v1/models lists %q", model, base))
		}
		names = append(names, openai.LoraRef{Name: model})
	}
	fromModel := len(names) > 0
	names = append(names, lora...)
	if len(names) == 0 {
		return nil, nil, func() {}, base, nil
	}
	reg := s.adapterRegistry()
	if reg == nil {
		return nil, nil, nil, "", apierror.BadRequest("lora", "this server has no adapters (start it with --adapter-dir)")
	}
	if len(names) > engine.MaxStackedAdapters {
		// before any is loaded for nothing (the engine checks it too)
		return nil, nil, nil, "", apierror.BadRequest("lora", fmt.Sprintf("%d adapters stacked; at most %d", len(names), engine.MaxStackedAdapters))
	}
	var manifest *adapters.Manifest
	var uses []engine.AdapterUse
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	for i, n := range names {
		scale := float32(-1) // Acquire's "the adapter's default"
		if n.Scale != nil {
			if *n.Scale < 0 {
				releaseAll()
				return nil, nil, nil, "", apierror.BadRequest("lora", fmt.Sprintf("lora[%d].scale must not be negative, got %g", i, *n.Scale))
			}
			scale = *n.Scale
		}
		use, m, release, err := reg.Acquire(n.Name, scale)
		if err != nil {
			releaseAll()
			return nil, nil, nil, "", err
		}
		if fromModel && len(uses) == 0 {
			manifest = m
		}
		uses = append(uses, use)
		releases = append(releases, release)
	}
	id := model
	if id == "" {
		id = base
	}
	return uses, manifest, releaseAll, id, nil
}

func (s *Server) listAdapters(c *gin.Context) {
	reg := s.adapterRegistry()
	data := []adapters.Entry{}
	if reg != nil {
		data = reg.List()
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

func (s *Server) loadAdapter(c *gin.Context) {
	reg := s.adapterRegistry()
	if reg == nil {
		s.fail(c, &apierror.Error{Status: http.StatusForbidden, Type: "permission_error", Code: "adapters_disabled", Message: "loading adapters is off: start the server with --adapter-dir"})
		return
	}
	var body struct {
		Name  string   `json:"name"`
		Path  string   `json:"path"`
		Scale *float32 `json:"scale"`
	}
	if err := decodeJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if body.Name == "" || body.Path == "" {
		s.fail(c, apierror.BadRequest("name", "name and path are required"))
		return
	}
	if e := s.engine(); e != nil && (body.Name == e.Info().ID || strings.Contains(body.Name, ":")) {
		s.fail(c, apierror.BadRequest("name", "an adapter cannot be named like the base model or contain ':'"))
		return
	}
	scale := float32(1)
	if body.Scale != nil {
		scale = *body.Scale
	}
	entry, err := reg.Load(body.Name, body.Path, scale)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, entry)
}

func (s *Server) unloadAdapter(c *gin.Context) {
	reg := s.adapterRegistry()
	if reg == nil {
		s.fail(c, apierror.NotFound("not_found", "no adapters are loaded"))
		return
	}
	name := c.Param("name")
	if err := reg.Unload(name); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"name": name, "object": "adapter", "deleted": true})
}
