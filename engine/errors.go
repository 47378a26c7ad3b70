package engine

import "fmt"

// Kind classifies engine errors. The engine knows nothing of HTTP: one table
// in server/apierror maps each kind to a status and an OpenAI error type.
type Kind int

const (
	KindInvalid     Kind = iota + 1 // the request itself is wrong
	KindOverloaded                  // queue full or KV cache full: retry later
	KindUnavailable                 // engine closed or loading
	KindInternal                    // llama.cpp failed
	KindNotFound                    // an unknown model or adapter
	KindForbidden                   // a path outside the allowed folders
	KindConflict                    // a name already in use
)

// Field names the part of a Request that an error is about. The engine
// does not know what the client called it (the prompt may have come as
// "messages" or "prompt"), so the server turns it into the wire parameter.
type Field int

const (
	FieldNone        Field = iota
	FieldPrompt            // Request.Prompt / PromptTokens
	FieldMaxTokens         // Request.MaxTokens
	FieldTopLogprobs       // Request.TopLogprobs
	FieldJSONSchema        // Request.JSONSchema alone
	FieldGrammar           // Request.Grammar, with any JSONSchema composed into it
	FieldAdapters          // Request.Adapters
)

// Error is a typed engine error.
type Error struct {
	Kind  Kind
	Field Field // the Request field at fault, set by the engine
	// Param is the wire parameter at fault, set only by a layer that knows
	// the client's field names (sampling, adapters, server).
	Param   string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrOverloaded is returned when every slot is busy and the queue is full.
var ErrOverloaded = &Error{Kind: KindOverloaded, Message: "server overloaded: all slots busy and the request queue is full; retry later"}

// ErrPreempted ends a PriorityLow request whose slot an interactive
// request needed: like ErrOverloaded, "retry later" (a batch line runs again).
var ErrPreempted = &Error{Kind: KindOverloaded, Message: "preempted: an interactive request needed the slot; retry later"}

// ErrClosed is returned for requests to, or still running in, a closed engine.
var ErrClosed = &Error{Kind: KindUnavailable, Message: "engine is shutting down"}

// Invalid builds a KindInvalid error about the wire parameter param; for
// layers that know the client's field names.
func Invalid(param, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Param: param, Message: fmt.Sprintf(format, args...)}
}

// InvalidField builds a KindInvalid error about a Request field; for the
// engine, which knows no wire names.
func InvalidField(f Field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: f, Message: fmt.Sprintf(format, args...)}
}

// Internal builds a KindInternal error.
func Internal(format string, args ...any) *Error {
	return &Error{Kind: KindInternal, Message: fmt.Sprintf(format, args...)}
}

// Errorf builds an error of kind k about the wire parameter param.
func Errorf(k Kind, param, format string, args ...any) *Error {
	return &Error{Kind: k, Param: param, Message: fmt.Sprintf(format, args...)}
}
