package sampling

import (
	"strings"
	"testing"
)

func TestPrecedence(t *testing.T) {
	req := Params{Temperature: f32(0.1)}
	adapter := Params{Temperature: f32(0.3), TopK: intp(5)}
	cases := []struct {
		name   string
		layers []Params
		temp   float32
		topP   float32
		topK   int
	}{
		{"thinking preset", []Params{{}, {}, Thinking}, 0.6, 0.95, 20},
		{"non-thinking preset", []Params{{}, {}, NonThinking}, 0.7, 0.8, 20},
		{"request beats preset", []Params{req, {}, Thinking}, 0.1, 0.95, 20},
		{"adapter beats preset", []Params{{}, adapter, NonThinking}, 0.3, 0.8, 5},
		{"request beats adapter", []Params{req, adapter, Thinking}, 0.1, 0.95, 5},
		{"built-in fills the rest", []Params{{}, {}, {}}, 0.8, 1, 0},
	}
	for _, c := range cases {
		s := Resolve(c.layers...).Engine()
		if s.Temperature != c.temp || s.TopP != c.topP || s.TopK != c.topK {
			t.Errorf("%s: got %+v", c.name, s)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := map[string]Params{
		"temperature":       {Temperature: f32(2.5)},
		"top_p":             {TopP: f32(0)},
		"top_k":             {TopK: intp(-1)},
		"min_p":             {MinP: f32(1.5)},
		"presence_penalty":  {PresencePenalty: f32(3)},
		"frequency_penalty": {FrequencyPenalty: f32(-3)},
		"repeat_penalty":    {RepeatPenalty: f32(0)},
	}
	for field, p := range bad {
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: want error naming the field, got %v", field, err)
		}
	}
	for _, ok := range []Params{Thinking, NonThinking, BuiltIn, {Temperature: f32(0)}, {TopP: f32(1)}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%v refused: %v", ok, err)
		}
	}
}

// A resolved request holds its own values: changing them leaves the
// presets (shared by every request) alone.
func TestResolveCopies(t *testing.T) {
	r := Resolve(Params{}, Thinking, BuiltIn)
	*r.Temperature, *r.RepeatPenalty = 1.5, 2
	if *Thinking.Temperature != 0.6 || *BuiltIn.RepeatPenalty != 1 {
		t.Fatalf("Resolve shares the presets' values: thinking %g, built-in repeat %g", *Thinking.Temperature, *BuiltIn.RepeatPenalty)
	}
}
