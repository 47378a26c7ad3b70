package server

// The Files and Batch API: thin handlers over package batch (which owns
// storage, validation and the runner), and the Executor that runs batch
// lines through this server's own chat and completions handlers.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qwen3-lora/qwen3-server/batch"
	"github.com/qwen3-lora/qwen3-server/server/apierror"
)

// multipartSlack is what a multipart upload may carry beyond the file
// itself (boundaries, part headers, the purpose field).
const multipartSlack = 64 << 10

// multipartMemory is how much of an upload ParseMultipartForm keeps in
// memory; the rest goes to a temporary file.
const multipartMemory = 8 << 20

// SetBatches enables the Files and Batch API on store. Start the store's
// runner with the server's Executor and ModelCheck once the engine is set.
func (s *Server) SetBatches(store *batch.Store) {
	s.mu.Lock()
	s.batches = store
	s.mu.Unlock()
}

// batchStore is the store, or answers 404 when the API is off.
func (s *Server) batchStore(c *gin.Context) (*batch.Store, bool) {
	s.mu.RLock()
	st := s.batches
	s.mu.RUnlock()
	if st == nil {
		s.fail(c, apierror.NotFound("batches_disabled", "the Files and Batch API is off on this server: set batch.data_dir (--batch-dir) to turn it on"))
		return nil, false
	}
	return st, true
}

// owner is the owner of what this request creates or reads: the hash of
// its API key, so another key's objects are not found (404, not 403).
func owner(c *gin.Context) string { return batch.OwnerForKey(c.GetString(ctxAPIKey)) }

// isUpload reports whether the request is a file upload, which has its
// own size limit (batch.max_file_bytes) instead of server.max_body_bytes.
func isUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/v1/files"
}

// listParams reads OpenAI's list query parameters.
func listParams(c *gin.Context) (batch.ListParams, error) {
	p := batch.ListParams{After: c.Query("after"), Order: c.Query("order"), Purpose: c.Query("purpose")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return p, apierror.BadRequest("limit", fmt.Sprintf("limit %q is not an integer", l))
		}
		p.Limit = n
	}
	return p, nil
}

func (s *Server) createFile(c *gin.Context) {
	st, ok := s.batchStore(c)
	if !ok {
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, st.Config().MaxFileBytes+multipartSlack)
	if err := c.Request.ParseMultipartForm(multipartMemory); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(c, &batch.Error{Kind: batch.KindTooLarge, Param: "file", Code: batch.CodeFileTooLarge,
				Message: fmt.Sprintf("the file is larger than the limit of %d bytes (batch.max_file_bytes)", st.Config().MaxFileBytes)})
			return
		}
		s.fail(c, apierror.BadRequest("file", "want a multipart/form-data body with the fields purpose and file: "+err.Error()))
		return
	}
	defer c.Request.MultipartForm.RemoveAll()
	fh, err := c.FormFile("file")
	if err != nil {
		s.fail(c, apierror.BadRequest("file", "the multipart field file is missing"))
		return
	}
	f, err := fh.Open()
	if err != nil {
		s.fail(c, err)
		return
	}
	defer f.Close()
	obj, err := st.CreateFile(c.Request.Context(), owner(c), c.PostForm("purpose"), fh.Filename, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, obj)
}

func (s *Server) listFiles(c *gin.Context) {
	s.listed(c, func(st *batch.Store, p batch.ListParams) (any, error) {
		return st.ListFiles(c.Request.Context(), owner(c), p)
	})
}

// listed answers a list request: list with the query's parameters.
func (s *Server) listed(c *gin.Context, list func(*batch.Store, batch.ListParams) (any, error)) {
	st, ok := s.batchStore(c)
	if !ok {
		return
	}
	p, err := listParams(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	answer(s, c)(list(st, p))
}

// fileContent serves the bytes as stored, as application/jsonl, and tells
// browsers not to sniff or render them: a file's content is the client's
// data, never a page of this origin.
func (s *Server) fileContent(c *gin.Context) {
	st, ok := s.batchStore(c)
	if !ok {
		return
	}
	f, r, err := st.FileContent(c.Request.Context(), owner(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	defer r.Close()
	h := c.Writer.Header()
	h.Set("Content-Type", "application/jsonl")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Content-Disposition", "attachment; filename="+strconv.Quote(f.ID+".jsonl"))
	h.Set("Content-Length", strconv.FormatInt(f.Bytes, 10))
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, r); err != nil {
		c.Set(ctxError, "sending the file: "+err.Error())
	}
}

func (s *Server) createBatch(c *gin.Context) {
	st, ok := s.batchStore(c)
	if !ok {
		return
	}
	var body batch.CreateBatchParams
	if err := decodeJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	answer(s, c)(st.CreateBatch(c.Request.Context(), owner(c), body))
}

func (s *Server) listBatches(c *gin.Context) {
	s.listed(c, func(st *batch.Store, p batch.ListParams) (any, error) {
		return st.ListBatches(c.Request.Context(), owner(c), p)
	})
}

// byID is the handler of a store call on the object named by the path's
// id, for the request's owner (get, delete, cancel).
func byID[T any](s *Server, op func(st *batch.Store, ctx context.Context, owner, id string) (T, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		if st, ok := s.batchStore(c); ok {
			answer(s, c)(op(st, c.Request.Context(), owner(c), c.Param("id")))
		}
	}
}

// answer returns a function that writes a store call's result: the object
// as JSON, or the error.
func answer(s *Server, c *gin.Context) func(v any, err error) {
	return func(v any, err error) {
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, v)
	}
}
