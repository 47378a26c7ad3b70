package adapters

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/internal/gguf"
)

// Watch scans the adapter folders every interval until ctx ends, loading
// new adapters (see Scan). Polling, not inotify: it also works on network
// and container-mounted folders.
func (r *Registry) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r.Scan()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scan loads every adapter found at the top level of the adapter folders
// that is not loaded yet: a PEFT folder (adapter_config.json) or a GGUF LoRA
// file, named after the folder or file. It returns the names loaded.
func (r *Registry) Scan() []string {
	loaded := map[string]bool{}
	for _, e := range r.List() {
		loaded[e.Source] = true
	}
	var names []string
	for _, root := range r.roots {
		entries, err := os.ReadDir(root)
		if err != nil {
			r.log.Warn("cannot scan the adapter folder", zap.String("dir", root), zap.Error(err))
			continue
		}
		for _, de := range entries {
			path := filepath.Join(root, de.Name())
			real, err := filepath.EvalSymlinks(path)
			if err != nil || loaded[real] || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			name := de.Name()
			st, err := os.Stat(real)
			if err != nil {
				continue
			}
			if st.IsDir() {
				if _, err := os.Stat(filepath.Join(real, "adapter_model.safetensors")); err != nil {
					continue // not (yet) a complete PEFT folder
				}
			} else {
				if !strings.HasSuffix(name, ".gguf") {
					continue
				}
				f, err := gguf.Open(real)
				if err != nil {
					continue
				}
				if t, _ := f.Meta["general.type"].(string); t != "adapter" {
					continue
				}
				name = strings.TrimSuffix(name, ".gguf")
			}
			if _, err := r.Load(name, path, 1); err != nil {
				r.log.Warn("adapter found but not loaded", zap.String("path", path), zap.Error(err))
				continue
			}
			names = append(names, name)
		}
	}
	return names
}
