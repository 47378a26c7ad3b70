package batch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Endpoints a batch may target.
const (
	EndpointChatCompletions = "/v1/chat/completions"
	EndpointCompletions     = "/v1/completions"
)

// OpenAI's metadata limits.
const (
	maxMetadataKeys  = 16
	maxMetadataKey   = 64
	maxMetadataValue = 512
)

// CreateBatch creates a batch of owner's input file. It returns at once in
// status validating; the runner validates the lines and runs them.
func (s *Store) CreateBatch(ctx context.Context, owner string, p CreateBatchParams) (*Batch, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if p.Endpoint != EndpointChatCompletions && p.Endpoint != EndpointCompletions {
		return nil, errorf(KindInvalid, "endpoint", "", "endpoint must be %s or %s, not %q", EndpointChatCompletions, EndpointCompletions, p.Endpoint)
	}
	if p.CompletionWindow != CompletionWindow {
		return nil, errorf(KindInvalid, "completion_window", "", "completion_window must be %q", CompletionWindow)
	}
	if err := checkMetadata(p.Metadata); err != nil {
		return nil, err
	}
	if p.InputFileID == "" {
		return nil, errorf(KindInvalid, "input_file_id", "", "input_file_id is required")
	}
	in, err := s.GetFile(ctx, owner, p.InputFileID)
	var be *Error
	if errors.As(err, &be) && be.Kind == KindNotFound {
		be.Param = "input_file_id"
		return nil, be
	}
	if err != nil {
		return nil, err
	}
	if in.Purpose != PurposeBatch {
		return nil, errorf(KindInvalid, "input_file_id", "", "file %s has purpose %q; a batch's input needs purpose %q", in.ID, in.Purpose, PurposeBatch)
	}
	var meta any // NULL without metadata
	if len(p.Metadata) > 0 {
		b, _ := json.Marshal(p.Metadata)
		meta = string(b)
	}
	id := newID("batch_")
	if err := linkOrCopy(s.filePath(in.ID), s.inputPath(id)); err != nil {
		return nil, fmt.Errorf("batch: keeping the input of %s: %w", id, err)
	}
	now := s.unix()
	expires := s.now().Add(s.window).Unix()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO batches
		(id, owner, endpoint, input_file_id, completion_window, status, output_plan, error_plan, metadata, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, owner, p.Endpoint, in.ID, p.CompletionWindow, StatusValidating, newID("file-"), newID("file-"), meta, now, expires); err != nil {
		os.Remove(s.inputPath(id))
		return nil, fmt.Errorf("batch: recording %s: %w", id, err)
	}
	s.log.Info("batch created", zap.String("batch", id), zap.String("input_file", in.ID), zap.String("endpoint", p.Endpoint))
	// Read it back before waking the runner: the answer is the batch as
	// created (validating), as OpenAI's, not a later state.
	b, err := s.GetBatch(ctx, owner, id)
	s.poke()
	return b, err
}

func checkMetadata(m map[string]string) error {
	if len(m) > maxMetadataKeys {
		return errorf(KindInvalid, "metadata", "", "metadata may have at most %d keys, not %d", maxMetadataKeys, len(m))
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > maxMetadataKey {
			return errorf(KindInvalid, "metadata", "", "metadata keys must be 1 to %d characters (%q)", maxMetadataKey, k)
		}
		if utf8.RuneCountInString(v) > maxMetadataValue {
			return errorf(KindInvalid, "metadata", "", "metadata values must be at most %d characters (key %q)", maxMetadataValue, k)
		}
	}
	return nil
}

// linkOrCopy gives dst the content of src: a hard link (same folder tree,
// so no copy of up to 200 MB), or a copy where links are not supported.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}

// GetBatch returns owner's batch id.
func (s *Store) GetBatch(ctx context.Context, owner, id string) (*Batch, error) {
	r, err := s.batchRow(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	return &r.Batch, nil
}

func (s *Store) batchRow(ctx context.Context, owner, id string) (*batchRow, error) {
	return getOwned(ctx, s, batchKind, owner, id, scanBatch)
}

// ListBatches lists owner's batches, newest first; Limit 1..100, default 20.
func (s *Store) ListBatches(ctx context.Context, owner string, p ListParams) (*List[Batch], error) {
	p.Purpose = ""
	return listPage(ctx, s, batchKind, owner, p, "", nil, func(r rowScanner) (Batch, string, error) {
		b, err := scanBatch(r)
		if err != nil {
			return Batch{}, "", err
		}
		return b.Batch, b.ID, nil
	})
}

// CancelBatch moves owner's validating or in-progress batch to cancelling;
// the runner stops its lines and finalizes it as cancelled, keeping the
// results it has. Cancelling a cancelling batch returns it as it is; a
// finished (or finalizing) batch is a KindConflict error.
func (s *Store) CancelBatch(ctx context.Context, owner, id string) (*Batch, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if !validID(batchKind.prefix, id) {
		return nil, batchKind.notFound(id)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE batches SET status = ?, cancelling_at = ?
		WHERE id = ? AND owner = ? AND status IN (?, ?)`, StatusCancelling, s.unix(), id, owner, StatusValidating, StatusInProgress)
	if err != nil {
		return nil, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	b, err := s.GetBatch(ctx, owner, id)
	if err != nil {
		return nil, err
	}
	if n == 0 && b.Status != StatusCancelling {
		return nil, errorf(KindConflict, "batch_id", "", "cannot cancel a batch that is %s", b.Status)
	}
	if n > 0 {
		s.log.Info("batch cancelling", zap.String("batch", id))
		s.poke()
	}
	return b, nil
}

// batchRow is a batch with the columns the API does not show.
type batchRow struct {
	Batch
	owner                 string
	outputPlan, errorPlan string
}

const batchCols = `id, owner, endpoint, input_file_id, completion_window, status, output_plan, error_plan,
	output_file_id, error_file_id, errors, metadata, created_at, expires_at, in_progress_at, finalizing_at,
	completed_at, failed_at, expired_at, cancelling_at, cancelled_at, total, completed, failed`

func scanBatch(row rowScanner) (*batchRow, error) {
	r := &batchRow{Batch: Batch{Object: "batch"}}
	var out, errFile, errs, meta sql.NullString
	var expires int64
	var inProgress, finalizing, completed, failed, expired, cancelling, cancelled sql.NullInt64
	b := &r.Batch
	if err := row.Scan(&b.ID, &r.owner, &b.Endpoint, &b.InputFileID, &b.CompletionWindow, &b.Status, &r.outputPlan, &r.errorPlan,
		&out, &errFile, &errs, &meta, &b.CreatedAt, &expires, &inProgress, &finalizing,
		&completed, &failed, &expired, &cancelling, &cancelled,
		&b.RequestCounts.Total, &b.RequestCounts.Completed, &b.RequestCounts.Failed); err != nil {
		return nil, err
	}
	b.ExpiresAt = &expires
	b.OutputFileID, b.ErrorFileID = nullString(out), nullString(errFile)
	b.InProgressAt, b.FinalizingAt, b.CompletedAt = nullInt(inProgress), nullInt(finalizing), nullInt(completed)
	b.FailedAt, b.ExpiredAt, b.CancellingAt, b.CancelledAt = nullInt(failed), nullInt(expired), nullInt(cancelling), nullInt(cancelled)
	if errs.Valid {
		b.Errors = &BatchErrors{Object: "list"}
		if err := json.Unmarshal([]byte(errs.String), &b.Errors.Data); err != nil {
			return nil, fmt.Errorf("batch %s: errors column: %w", b.ID, err)
		}
	}
	if meta.Valid {
		if err := json.Unmarshal([]byte(meta.String), &b.Metadata); err != nil {
			return nil, fmt.Errorf("batch %s: metadata column: %w", b.ID, err)
		}
	}
	return r, nil
}

func nullString(v sql.NullString) *string {
	if !v.Valid {
		return nil
	}
	return &v.String
}

func nullInt(v sql.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

// poke wakes the runner, if one runs, without waiting.
func (s *Store) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
