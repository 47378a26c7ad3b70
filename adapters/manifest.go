package adapters

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/qwen3-lora/qwen3-server/sampling"
)

// Manifest is an adapter's optional adapter.yaml: how the fine-tune wants
// to be run. Request fields win over it; it wins over the mode presets.
//
//	enable_thinking: true        # default thinking mode for this adapter
//	system_prompt: "你是一个医学专家…"  # used when a request has no system message
//	sampling: {temperature: 0.5, top_p: 0.9}
type Manifest struct {
	EnableThinking *bool           `yaml:"enable_thinking" json:"enable_thinking,omitempty"`
	SystemPrompt   string          `yaml:"system_prompt" json:"system_prompt,omitempty"`
	Sampling       sampling.Params `yaml:"sampling" json:"sampling,omitempty"`
}

// manifestPath is adapter.yaml inside a PEFT folder, or NAME.adapter.yaml
// beside a GGUF file NAME.gguf.
func manifestPath(source string, isDir bool) string {
	if isDir {
		return filepath.Join(source, "adapter.yaml")
	}
	return strings.TrimSuffix(source, filepath.Ext(source)) + ".adapter.yaml"
}

// loadManifest reads the manifest if there is one; unknown keys and bad
// values are errors, so a typo does not silently change nothing.
func loadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := m.Sampling.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}
