// Package sampling resolves a request's sampling parameters: Qwen3's
// recommended presets per mode (thinking or not), overridden by adapter
// defaults, overridden by the request's own fields, then validated. It owns
// the parameter types and the presets' one source (configs' defaults, bench
// and tests read them here). The sampler chain itself (llama.cpp's
// samplers) is built in engine/llamacpp. It must not import the layers
// above it (server, conversation) or an engine implementation.
package sampling

import (
	"fmt"

	"github.com/qwen3-lora/qwen3-server/engine"
)

// Params is a partial set of sampling parameters: nil means "not set here,
// ask the next layer down".
type Params struct {
	Temperature      *float32 `json:"temperature,omitempty" mapstructure:"temperature" yaml:"temperature,omitempty"`
	TopP             *float32 `json:"top_p,omitempty" mapstructure:"top_p" yaml:"top_p,omitempty"`
	TopK             *int     `json:"top_k,omitempty" mapstructure:"top_k" yaml:"top_k,omitempty"`
	MinP             *float32 `json:"min_p,omitempty" mapstructure:"min_p" yaml:"min_p,omitempty"`
	PresencePenalty  *float32 `json:"presence_penalty,omitempty" mapstructure:"presence_penalty" yaml:"presence_penalty,omitempty"`
	FrequencyPenalty *float32 `json:"frequency_penalty,omitempty" mapstructure:"frequency_penalty" yaml:"frequency_penalty,omitempty"`
	RepeatPenalty    *float32 `json:"repeat_penalty,omitempty" mapstructure:"repeat_penalty" yaml:"repeat_penalty,omitempty"`
	Seed             *uint32  `json:"seed,omitempty" mapstructure:"seed" yaml:"seed,omitempty"`
}

func f32(v float32) *float32 { return &v }
func intp(v int) *int        { return &v }

// Qwen3's recommended settings (model card, "Best Practices").
var (
	// Thinking: temperature 0.6, top_p 0.95, top_k 20, min_p 0.
	Thinking = Params{Temperature: f32(0.6), TopP: f32(0.95), TopK: intp(20), MinP: f32(0)}
	// NonThinking: temperature 0.7, top_p 0.8, top_k 20, min_p 0.
	NonThinking = Params{Temperature: f32(0.7), TopP: f32(0.8), TopK: intp(20), MinP: f32(0)}
)

// BuiltIn is the last layer: neutral values for everything presets leave out.
var BuiltIn = Params{
	Temperature: f32(0.8), TopP: f32(1), TopK: intp(0), MinP: f32(0),
	PresencePenalty: f32(0), FrequencyPenalty: f32(0), RepeatPenalty: f32(1),
}

// Preset returns the mode's preset.
func Preset(thinking bool) Params {
	if thinking {
		return Thinking
	}
	return NonThinking
}

// Resolve merges layers, first non-nil wins: typically request, adapter
// defaults, the mode's preset, BuiltIn. The result holds copies, so no
// request shares (or can change) the presets' values.
func Resolve(layers ...Params) Params {
	var out Params
	for _, l := range layers {
		pick(&out.Temperature, l.Temperature)
		pick(&out.TopP, l.TopP)
		pick(&out.TopK, l.TopK)
		pick(&out.MinP, l.MinP)
		pick(&out.PresencePenalty, l.PresencePenalty)
		pick(&out.FrequencyPenalty, l.FrequencyPenalty)
		pick(&out.RepeatPenalty, l.RepeatPenalty)
		pick(&out.Seed, l.Seed)
	}
	return out
}

func pick[T any](dst **T, v *T) {
	if *dst == nil && v != nil {
		c := *v
		*dst = &c
	}
}

// Validate checks ranges; the error names the request field.
func (p Params) Validate() error {
	if v := p.Temperature; v != nil && (*v < 0 || *v > 2) {
		return engine.Invalid("temperature", "temperature must be between 0 and 2, got %g", *v)
	}
	if v := p.TopP; v != nil && (*v <= 0 || *v > 1) {
		return engine.Invalid("top_p", "top_p must be in (0, 1], got %g", *v)
	}
	if v := p.TopK; v != nil && *v < 0 {
		return engine.Invalid("top_k", "top_k must not be negative, got %d", *v)
	}
	if v := p.MinP; v != nil && (*v < 0 || *v > 1) {
		return engine.Invalid("min_p", "min_p must be in [0, 1], got %g", *v)
	}
	if v := p.PresencePenalty; v != nil && (*v < -2 || *v > 2) {
		return engine.Invalid("presence_penalty", "presence_penalty must be between -2 and 2, got %g", *v)
	}
	if v := p.FrequencyPenalty; v != nil && (*v < -2 || *v > 2) {
		return engine.Invalid("frequency_penalty", "frequency_penalty must be between -2 and 2, got %g", *v)
	}
	if v := p.RepeatPenalty; v != nil && (*v <= 0 || *v > 10) {
		return engine.Invalid("repeat_penalty", "repeat_penalty must be in (0, 10], got %g", *v)
	}
	return nil
}

// Engine converts fully resolved parameters to the engine's form.
func (p Params) Engine() engine.Sampling {
	r := Resolve(p, BuiltIn)
	return engine.Sampling{
		Temperature: *r.Temperature, TopP: *r.TopP, TopK: *r.TopK, MinP: *r.MinP,
		PresencePenalty: *r.PresencePenalty, FrequencyPenalty: *r.FrequencyPenalty, RepeatPenalty: *r.RepeatPenalty,
		Seed: r.Seed,
	}
}

// String is a compact form for logs and the X-Sampling-Params header.
func (p Params) String() string {
	s := p.Engine()
	out := fmt.Sprintf("temperature=%g top_p=%g top_k=%d min_p=%g presence_penalty=%g frequency_penalty=%g repeat_penalty=%g",
		s.Temperature, s.TopP, s.TopK, s.MinP, s.PresencePenalty, s.FrequencyPenalty, s.RepeatPenalty)
	if s.Seed != nil {
		out += fmt.Sprintf(" seed=%d", *s.Seed)
	}
	return out
}
