package adapters

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/qwen3-lora/qwen3-server/engine"
)

// Registry holds the adapters loaded at run time, by name. Paths must lie
// inside the configured adapter folders (after following symlinks): the API
// must never read arbitrary files. PEFT folders are converted to GGUF once
// and cached by content hash.
type Registry struct {
	loader   engine.AdapterLoader
	roots    []string
	cacheDir string
	log      *zap.Logger

	// MaxLoaded caps the loaded adapters (0: no cap). Loading one more
	// evicts the least recently used adapter that no request is using.
	MaxLoaded int

	mu     sync.Mutex
	byName map[string]*entry
	loads  int // adapters loaded since start, unloaded ones included
}

type entry struct {
	Entry
	handle engine.Adapter
	closed bool
}

// Entry describes a loaded adapter (GET /v1/adapters).
type Entry struct {
	Name          string    `json:"name"`
	Source        string    `json:"path"`
	Format        string    `json:"format"` // gguf or peft
	GGUF          string    `json:"gguf"`
	Rank          int       `json:"rank,omitempty"`
	Alpha         float64   `json:"alpha,omitempty"`
	TargetModules []string  `json:"target_modules,omitempty"`
	SizeBytes     int64     `json:"size_bytes"`
	Scale         float32   `json:"scale"`
	State         string    `json:"state"` // loaded, unloading
	InFlight      int       `json:"requests_in_flight"`
	LoadedAt      time.Time `json:"loaded_at"`
	LastUsed      time.Time `json:"last_used,omitempty"`
	Manifest      *Manifest `json:"manifest,omitempty"`
}

// NewRegistry makes a registry; roots are the allowed adapter folders.
func NewRegistry(loader engine.AdapterLoader, roots []string, cacheDir string, log *zap.Logger) (*Registry, error) {
	r := &Registry{loader: loader, cacheDir: cacheDir, log: log, byName: map[string]*entry{}}
	if log == nil {
		r.log = zap.NewNop()
	}
	for _, d := range roots {
		abs, err := filepath.Abs(d)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("adapter folder %s: %w", d, err)
		}
		r.roots = append(r.roots, abs)
	}
	if cacheDir == "" && len(r.roots) > 0 {
		r.cacheDir = filepath.Join(os.TempDir(), "qwen3-server-adapters")
	}
	return r, nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// resolve checks that path lies inside an adapter folder. Its messages
// name the path as the client wrote it, never where it led (see Load).
func (r *Registry) resolve(given string) (string, error) {
	if len(r.roots) == 0 {
		return "", engine.Errorf(engine.KindForbidden, "path", "no adapter folder is configured (--adapter-dir): loading adapters through the API is off")
	}
	path := given
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.roots[0], path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		if os.IsNotExist(err) {
			return "", engine.Errorf(engine.KindNotFound, "path", "adapter path %q does not exist", given)
		}
		return "", engine.Errorf(engine.KindInvalid, "path", "adapter path %q: %v", given, err)
	}
	for _, root := range r.roots {
		if real == root || strings.HasPrefix(real, root+string(filepath.Separator)) {
			return real, nil
		}
	}
	return "", engine.Errorf(engine.KindForbidden, "path", "adapter path %q is outside the adapter folders", given)
}

// hidePaths keeps server-side folders out of an error a client sees: the
// adapter folders and the conversion cache are named by their config key.
// Errors from below (file system, conversion, llama.cpp) carry absolute
// paths, and where the adapter folders are mounted is nobody's business
// but the operator's (who finds them in the log).
func (r *Registry) hidePaths(err error) error {
	ee, ok := err.(*engine.Error)
	if !ok {
		return err
	}
	msg := ee.Message
	folders := make([][2]string, 0, len(r.roots)+1)
	for i, root := range r.roots {
		folders = append(folders, [2]string{root, fmt.Sprintf("<adapters.dirs[%d]>", i)})
	}
	if r.cacheDir != "" {
		if abs, err := filepath.Abs(r.cacheDir); err == nil {
			folders = append(folders, [2]string{abs, "<adapters.cache_dir>"})
		}
	}
	// Longest first: a cache folder inside an adapter folder keeps its name.
	sort.Slice(folders, func(i, j int) bool { return len(folders[i][0]) > len(folders[j][0]) })
	for _, f := range folders {
		msg = strings.ReplaceAll(msg, f[0], f[1])
	}
	out := *ee
	out.Message = msg
	return &out
}

// Load loads an adapter under name from path (a GGUF LoRA file or a PEFT
// folder). scale is its default scale. Its errors name no server-side
// folder (hidePaths): they go to API clients.
func (r *Registry) Load(name, path string, scale float32) (*Entry, error) {
	e, err := r.load(name, path, scale)
	if err != nil {
		r.log.Info("adapter not loaded", zap.String("name", name), zap.String("path", path), zap.Error(err))
		return nil, r.hidePaths(err)
	}
	return e, nil
}

func (r *Registry) load(name, path string, scale float32) (*Entry, error) {
	if !validName.MatchString(name) {
		return nil, engine.Invalid("name", "adapter name %q: use letters, digits, '.', '_' or '-' (at most 128)", name)
	}
	real, err := r.resolve(path)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	_, exists := r.byName[name]
	r.mu.Unlock()
	if exists {
		return nil, engine.Errorf(engine.KindConflict, "name", "an adapter named %q is already loaded; DELETE it first", name)
	}
	e := Entry{Name: name, Source: real, Scale: scale, State: "loaded", LoadedAt: time.Now()}
	st, err := os.Stat(real)
	if err != nil {
		return nil, engine.Errorf(engine.KindNotFound, "path", "%v", err)
	}
	if st.IsDir() {
		e.Format = "peft"
		gg, info, err := r.convert(real)
		if err != nil {
			return nil, engine.Invalid("path", "PEFT adapter %s: %v", real, err)
		}
		e.GGUF, e.Rank, e.Alpha, e.TargetModules = gg, info.Rank, info.Alpha, info.TargetModules
	} else {
		e.Format, e.GGUF = "gguf", real
	}
	if e.Manifest, err = loadManifest(manifestPath(real, st.IsDir())); err != nil {
		return nil, engine.Invalid("path", "adapter manifest: %v", err)
	}
	if gs, err := os.Stat(e.GGUF); err == nil {
		e.SizeBytes = gs.Size()
	}
	if err := r.makeRoom(); err != nil {
		return nil, err
	}
	h, err := r.loader.LoadAdapter(e.GGUF)
	if err != nil {
		return nil, engine.Invalid("path", "%v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, exists := r.byName[name]; exists { // lost a race with another load
		h.Close()
		return nil, engine.Errorf(engine.KindConflict, "name", "an adapter named %q is already loaded", name)
	}
	r.byName[name] = &entry{Entry: e, handle: h}
	r.loads++
	r.log.Info("adapter loaded", zap.String("name", name), zap.String("path", real), zap.String("format", e.Format))
	out := e
	return &out, nil
}

// makeRoom evicts least-recently-used idle adapters until one more fits
// under MaxLoaded.
func (r *Registry) makeRoom() error {
	if r.MaxLoaded <= 0 {
		return nil
	}
	for {
		r.mu.Lock()
		if len(r.byName) < r.MaxLoaded {
			r.mu.Unlock()
			return nil
		}
		var victim *entry
		for _, e := range r.byName {
			if e.InFlight > 0 {
				continue
			}
			if victim == nil || lastUse(e).Before(lastUse(victim)) {
				victim = e
			}
		}
		r.mu.Unlock()
		if victim == nil {
			return &engine.Error{Kind: engine.KindOverloaded, Param: "name", Message: fmt.Sprintf("all %d loaded adapters are in use (adapters.max_loaded); retry later", r.MaxLoaded)}
		}
		r.log.Info("evicting the least recently used adapter", zap.String("name", victim.Name))
		if err := r.Unload(victim.Name); err != nil {
			return err
		}
	}
}

func lastUse(e *entry) time.Time {
	if e.LastUsed.IsZero() {
		return e.LoadedAt
	}
	return e.LastUsed
}

// convert turns a PEFT folder into a cached GGUF named by the hash of the
// folder's two files.
func (r *Registry) convert(dir string) (string, *Info, error) {
	h := sha256.New()
	for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			return "", nil, err
		}
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", nil, err
		}
	}
	if err := os.MkdirAll(r.cacheDir, 0o755); err != nil {
		return "", nil, err
	}
	out := filepath.Join(r.cacheDir, hex.EncodeToString(h.Sum(nil))[:32]+".gguf")
	info, err := ConvertPEFT(dir, out+".part")
	if err != nil {
		return "", nil, err
	}
	if err := os.Rename(out+".part", out); err != nil {
		return "", nil, err
	}
	return out, info, nil
}

// Unload removes the adapter: later requests naming it get 404, requests
// in flight finish with it, and it is freed after the last one.
func (r *Registry) Unload(name string) error {
	r.mu.Lock()
	e, ok := r.byName[name]
	if !ok {
		r.mu.Unlock()
		return engine.Errorf(engine.KindNotFound, "name", "no adapter named %q", name)
	}
	delete(r.byName, name)
	e.State = "unloading"
	free := e.InFlight == 0 && !e.closed
	if free {
		e.closed = true
	}
	r.mu.Unlock()
	if free {
		e.handle.Close()
	}
	r.log.Info("adapter unloaded", zap.String("name", name))
	return nil
}

// Acquire returns the adapter for a request, its manifest (nil if none)
// and a release function the request must call when it ends. scale < 0
// means the adapter's default.
func (r *Registry) Acquire(name string, scale float32) (engine.AdapterUse, *Manifest, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byName[name]
	if !ok {
		return engine.AdapterUse{}, nil, nil, engine.Errorf(engine.KindNotFound, "model", "no adapter or model named %q; GET /v1/models lists them", name)
	}
	e.InFlight++
	e.LastUsed = time.Now()
	if scale < 0 {
		scale = e.Scale
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			r.mu.Lock()
			e.InFlight--
			free := e.State == "unloading" && e.InFlight == 0 && !e.closed
			if free {
				e.closed = true
			}
			r.mu.Unlock()
			if free {
				e.handle.Close()
			}
		})
	}
	return engine.AdapterUse{Adapter: e.handle, Scale: scale}, e.Manifest, release, nil
}

// Loads counts the adapters loaded since the registry was made, those
// unloaded since included.
func (r *Registry) Loads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loads
}

// Names returns, sorted, the names of the loaded adapters whose handles
// are among handles (the engine's Stats reports handles, not names).
func (r *Registry) Names(handles []engine.Adapter) []string {
	if len(handles) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for name, e := range r.byName {
		for _, h := range handles {
			if e.handle == h {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// List returns the loaded adapters, by name.
func (r *Registry) List() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, 0, len(r.byName))
	for _, e := range r.byName {
		out = append(out, e.Entry)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
