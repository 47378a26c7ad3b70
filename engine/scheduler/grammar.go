package scheduler

import (
	"regexp"

	"github.com/qwen3-lora/qwen3-server/engine"
	"github.com/qwen3-lora/qwen3-server/engine/llamacpp"
)

// rootRule is the root rule's definition in a grammar from a JSON schema.
var rootRule = regexp.MustCompile(`(?m)^root\s*::=`)

// composeGrammar is the GBNF grammar a request's output must follow: its
// Grammar, its JSONSchema turned into a grammar, or both, the schema's
// grammar becoming the rule "json" the request's grammar refers to (the
// Qwen3 tool-call block wraps a JSON object this way).
func composeGrammar(req *engine.Request) (string, error) {
	grammar := req.Grammar
	if len(req.JSONSchema) > 0 {
		g := llamacpp.SchemaToGrammar(req.JSONSchema)
		if g == "" {
			// Composed into a grammar, the schema is part of that grammar.
			field := engine.FieldJSONSchema
			if req.Grammar != "" {
				field = engine.FieldGrammar
			}
			return "", engine.InvalidField(field, "the JSON schema is invalid or uses features llama.cpp cannot turn into a grammar")
		}
		if req.Grammar == "" {
			grammar = g
		} else {
			grammar = req.Grammar + "\n" + rootRule.ReplaceAllString(g, "json ::=")
		}
	}
	return grammar, nil
}
