package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
)

// ModelCheck reports whether a line's model (the base model or an adapter:
// one batch may mix them) can be served; its error's message is the line's
// validation error. A nil ModelCheck accepts every model.
type ModelCheck func(model string) error

// Validation error codes, as OpenAI names them where it documents one.
const (
	CodeInvalidJSONLine   = "invalid_json_line"
	CodeMissingParameter  = "missing_required_parameter"
	CodeDuplicateCustomID = "duplicate_custom_id"
	CodeInvalidMethod     = "invalid_method"
	CodeInvalidURL        = "invalid_url"
	CodeModelNotFound     = "model_not_found"
	CodeEmptyFile         = "empty_file"
	CodeFileNotFound      = "file_not_found"
	CodeTooManyErrors     = "too_many_errors"
)

// maxReportedErrors bounds errors.data, which every GET of the batch
// returns: a 50,000-line file of bad lines would otherwise make it megabytes.
const maxReportedErrors = 1000

// lineRef is a valid line: where its bytes are in the batch's input copy.
type lineRef struct {
	no       int
	customID string
	off, len int64
}

// validate checks every line of the batch's input and either moves the
// batch to in_progress with one row per line, or fails it with the errors
// (line numbers 1-based, blank lines counted but not requests). Both
// happen in one transaction and only if the batch is still validating, so
// a cancel or an expiry in between wins; a cancelled ctx writes nothing.
func (s *Store) validate(ctx context.Context, b *batchRow, check ModelCheck) error {
	f, err := os.Open(s.inputPath(b.ID))
	if errors.Is(err, os.ErrNotExist) {
		return s.failValidation(ctx, b.ID, []BatchError{{Code: CodeFileNotFound, Message: "the batch's input file is missing from the data folder"}})
	}
	if err != nil {
		return err
	}
	defer f.Close()
	v := lineValidator{endpoint: b.Endpoint, check: check, seen: map[string]int{}, models: map[string]error{}}
	rd := bufio.NewReaderSize(f, 64<<10)
	var off int64
	var refs []lineRef
	var errs []BatchError
	nErrs := 0
	for no := 1; ; no++ {
		raw, rerr := rd.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
		if len(raw) > 0 && !blank(raw) {
			if no%1000 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			customID, e := v.line(raw, no)
			switch {
			case e == nil:
				refs = append(refs, lineRef{no: no, customID: customID, off: off, len: int64(len(raw))})
			case nErrs < maxReportedErrors:
				errs = append(errs, *e)
				fallthrough
			default:
				nErrs++
			}
		}
		off += int64(len(raw))
		if rerr == io.EOF {
			break
		}
	}
	if nErrs > maxReportedErrors {
		errs = append(errs, BatchError{Code: CodeTooManyErrors, Message: fmt.Sprintf("%d more invalid lines are not listed", nErrs-maxReportedErrors)})
	}
	if nErrs == 0 && len(refs) == 0 {
		errs = append(errs, BatchError{Code: CodeEmptyFile, Message: "the input file has no requests"})
	}
	if len(errs) > 0 {
		return s.failValidation(ctx, b.ID, errs)
	}
	return s.startLines(ctx, b.ID, refs)
}

// startLines records the lines and moves the batch to in_progress.
func (s *Store) startLines(ctx context.Context, id string, refs []lineRef) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO lines (batch_id, line_no, custom_id, off, len, req_id) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for _, r := range refs {
		if _, err := ins.ExecContext(ctx, id, r.no, r.customID, r.off, r.len, newID("batch_req_")); err != nil {
			return fmt.Errorf("batch %s line %d: %w", id, r.no, err)
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE batches SET status = ?, in_progress_at = ?, total = ? WHERE id = ? AND status = ?`,
		StatusInProgress, s.unix(), len(refs), id, StatusValidating)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // cancelled or expired meanwhile: the rollback drops the lines
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.log.Info("batch in progress", zap.String("batch", id), zap.Int("lines", len(refs)))
	return nil
}

func (s *Store) failValidation(ctx context.Context, id string, errs []BatchError) error {
	js, err := json.Marshal(errs)
	if err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE batches SET status = ?, failed_at = ?, errors = ? WHERE id = ? AND status = ?`,
		StatusFailed, s.unix(), string(js), id, StatusValidating)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	s.log.Info("batch failed validation", zap.String("batch", id), zap.Int("errors", len(errs)))
	s.dropInput(id)
	return nil
}

// dropInput removes a finished batch's input link.
func (s *Store) dropInput(id string) {
	if err := os.Remove(s.inputPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("removing a batch's input link", zap.String("batch", id), zap.Error(err))
	}
}

// lineValidator checks lines one by one, remembering custom_ids and models.
type lineValidator struct {
	endpoint string
	check    ModelCheck
	seen     map[string]int   // custom_id → its first line
	models   map[string]error // ModelCheck's answer per model, asked once
}

func lineError(no int, code, param, format string, args ...any) *BatchError {
	e := &BatchError{Code: code, Message: fmt.Sprintf(format, args...), Line: &no}
	if param != "" {
		e.Param = &param
	}
	return e
}

// line validates line no and returns its custom_id.
func (v *lineValidator) line(raw []byte, no int) (string, *BatchError) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return "", lineError(no, CodeInvalidJSONLine, "", "line %d is not a JSON object", no)
	}
	str := func(key string) (string, bool) {
		var s string
		if err := json.Unmarshal(fields[key], &s); err != nil {
			return "", false
		}
		return s, true
	}
	customID, ok := str("custom_id")
	if !ok || customID == "" {
		return "", lineError(no, CodeMissingParameter, "custom_id", "custom_id is required and must be a non-empty string")
	}
	if first, dup := v.seen[customID]; dup {
		return "", lineError(no, CodeDuplicateCustomID, "custom_id", "custom_id %q is also on line %d; each request's custom_id must be unique in a batch", customID, first)
	}
	v.seen[customID] = no
	if m, ok := str("method"); !ok || m != "POST" {
		return "", lineError(no, CodeInvalidMethod, "method", "method must be POST")
	}
	if u, ok := str("url"); !ok || u != v.endpoint {
		return "", lineError(no, CodeInvalidURL, "url", "url must be the batch's endpoint %s", v.endpoint)
	}
	body := fields["body"]
	var bodyFields struct {
		Model json.RawMessage `json:"model"`
	}
	if len(body) == 0 || body[0] != '{' || json.Unmarshal(body, &bodyFields) != nil {
		return "", lineError(no, CodeMissingParameter, "body", "body is required and must be a JSON object")
	}
	var model string
	if json.Unmarshal(bodyFields.Model, &model) != nil || model == "" {
		return "", lineError(no, CodeMissingParameter, "body.model", "body.model is required and must be a string")
	}
	if v.check != nil {
		err, asked := v.models[model]
		if !asked {
			err = v.check(model)
			v.models[model] = err
		}
		if err != nil {
			return "", lineError(no, CodeModelNotFound, "body.model", "%v", err)
		}
	}
	return customID, nil
}
