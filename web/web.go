// Package web is the chat page served at /: plain HTML, CSS and JavaScript
// embedded in the binary, with no CDN and no third-party code (the Markdown
// renderer is ours, so there is nothing to bundle). The page talks to the
// same OpenAI-compatible API as any other client.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// csp keeps the page to its own origin: no inline script, no remote
// resources, nothing that model output rendered as Markdown could use.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"

type file struct {
	name string // for the Content-Type, by extension
	data []byte
	etag string
}

// Handler serves the page at / and its other files at /assets/NAME. Each
// response carries a content-hash ETag, so a browser revalidates cheaply
// and never keeps a page older than the binary.
func Handler() http.Handler {
	byPath := map[string]file{}
	fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := strings.TrimPrefix(p, "static/")
		f := file{name: name, data: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if name == "index.html" {
			byPath["/"] = f
		} else {
			byPath["/assets/"+name] = f
		}
		return nil
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := byPath[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		// ServeContent answers If-None-Match with 304 and sets the type.
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.data))
	})
}
