package server

import (
	"testing"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

// The engine names Request fields; the server turns them into the wire
// parameter of the endpoint, and leaves a param set by another layer alone.
func TestAttachParam(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{engine.InvalidField(engine.FieldPrompt, "empty"), "messages"},
		{engine.InvalidField(engine.FieldMaxTokens, "neg"), "max_tokens"},
		{engine.InvalidField(engine.FieldJSONSchema, "bad"), "response_format"},
		{engine.InvalidField(engine.FieldGrammar, "bad"), "tools"},
		{engine.Invalid("temperature", "bad"), "temperature"},
	}
	for _, c := range cases {
		p := apierror.From(attachParam(c.err, "messages")).Body().Error.Param
		if p == nil || *p != c.want {
			t.Errorf("%v: param %v, want %s", c.err, p, c.want)
		}
	}
	if p := apierror.From(attachParam(engine.ErrOverloaded, "prompt")).Body().Error.Param; p != nil {
		t.Errorf("overloaded got param %q", *p)
	}
}
