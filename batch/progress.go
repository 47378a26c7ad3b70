package batch

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
)

// openBatches are the batches the runner has work for, oldest first.
func (s *Store) openBatches(ctx context.Context) ([]*batchRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+batchCols+` FROM batches WHERE status IN (?, ?, ?, ?) ORDER BY seq`,
		StatusValidating, StatusInProgress, StatusFinalizing, StatusCancelling)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*batchRow
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// pendingLines are up to n lines of a batch without a result, in order.
func (s *Store) pendingLines(ctx context.Context, batchID string, n int) ([]lineRef, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT line_no, custom_id, off, len FROM lines
		WHERE batch_id = ? AND done = 0 ORDER BY line_no LIMIT ?`, batchID, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lineRef
	for rows.Next() {
		var l lineRef
		if err := rows.Scan(&l.no, &l.customID, &l.off, &l.len); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// recordLine stores a line's result and counts it, in one transaction and
// only if the line has none yet: a result is written exactly once, and a
// line with one never runs again. It does not take the caller's context:
// a result that exists is kept even while the server stops.
func (s *Store) recordLine(batchID string, no int, res lineResult) (bool, error) {
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var requestID, status, body, code, msg any // NULL unless set
	if res.errCode != "" {
		code, msg = res.errCode, res.errMsg
	} else {
		requestID, status, body = res.requestID, res.status, []byte(res.body)
	}
	r, err := tx.ExecContext(ctx, `UPDATE lines SET done = 1, request_id = ?, status_code = ?, response = ?, error_code = ?, error_message = ?
		WHERE batch_id = ? AND line_no = ? AND done = 0`, requestID, status, body, code, msg, batchID, no)
	if err != nil {
		return false, err
	}
	if n, err := r.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	completed, failed := 0, 1
	if res.ok() {
		completed, failed = 1, 0
	}
	if _, err := tx.ExecContext(ctx, `UPDATE batches SET completed = completed + ?, failed = failed + ? WHERE id = ?`,
		completed, failed, batchID); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// markFinalizing moves an in-progress batch whose lines are all done to
// finalizing; false if it was no longer in progress.
func (s *Store) markFinalizing(ctx context.Context, id string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE batches SET status = ?, finalizing_at = ? WHERE id = ? AND status = ?`,
		StatusFinalizing, s.unix(), id, StatusInProgress)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// Which lines go to which file, as SQL conditions on the lines table.
const (
	condOK = `(done = 1 AND error_code IS NULL AND status_code BETWEEN 200 AND 299)`
	// Answered with another status, or failed without an answer.
	condFailed = `(done = 1 AND NOT ` + condOK + `)`
	// For an expired batch the lines never run fail too, as batch_expired.
	condFailedOrPending = `(NOT ` + condOK + `)`
)

// finalAt is the timestamp column each final status sets.
var finalAt = map[Status]string{StatusCompleted: "completed_at", StatusExpired: "expired_at", StatusCancelled: "cancelled_at"}

// finalize writes a batch's output and error files from its lines, in
// input order, and moves it to status to (completed, expired or cancelled).
// It can be redone after a crash at any point: the file ids were fixed at
// creation, the files are rewritten whole under them, and the file rows
// and the status change commit together, only if the batch is still in
// the status it was read in.
func (s *Store) finalize(ctx context.Context, b *batchRow, to Status) error {
	if b.Status.Terminal() {
		return nil
	}
	failedCond := condFailed
	if to == StatusExpired {
		failedCond = condFailedOrPending
	}
	var nOK, nFailed, nPending int
	if err := s.db.QueryRowContext(ctx, `SELECT
		COALESCE(SUM(`+condOK+`), 0), COALESCE(SUM(`+failedCond+`), 0), COALESCE(SUM(done = 0), 0)
		FROM lines WHERE batch_id = ?`, b.ID).Scan(&nOK, &nFailed, &nPending); err != nil {
		return err
	}
	type written struct {
		id, name string
		bytes    int64
		lines    int
	}
	var files []written
	var outputID, errorID any // NULL unless written
	for _, f := range []struct {
		n          int
		id, suffix string
		cond       string
		dst        *any
	}{
		{nOK, b.outputPlan, "output", condOK, &outputID},
		{nFailed, b.errorPlan, "error", failedCond, &errorID},
	} {
		if f.n == 0 {
			continue
		}
		n, lines, err := s.writeFile(f.id, 0, 0, func(w io.Writer) error { return s.writeLines(ctx, w, b.ID, f.cond) })
		if err != nil {
			return fmt.Errorf("writing the %s file of %s: %w", f.suffix, b.ID, err)
		}
		files = append(files, written{f.id, fmt.Sprintf("%s_%s.jsonl", b.ID, f.suffix), n, lines})
		*f.dst = f.id
	}
	removeWritten := func() {
		for _, f := range files {
			os.Remove(s.filePath(f.id))
		}
	}
	if s.beforeFinalCommit != nil {
		if err := s.beforeFinalCommit(b.ID); err != nil {
			return err
		}
	}
	expiredLines := 0
	if to == StatusExpired {
		expiredLines = nPending
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := s.unix()
	for _, f := range files {
		if _, err := tx.ExecContext(ctx, `INSERT INTO files (id, owner, purpose, filename, bytes, lines, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			f.id, b.owner, PurposeBatchOutput, f.name, f.bytes, f.lines, now); err != nil {
			return err
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE batches SET status = ?, output_file_id = ?, error_file_id = ?, `+finalAt[to]+` = ?,
		failed = failed + ? WHERE id = ? AND status = ?`, to, outputID, errorID, now, expiredLines, b.ID, b.Status)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		// Its status changed since it was read; the next tick sees the new one.
		removeWritten()
		return nil
	}
	if err := tx.Commit(); err != nil {
		removeWritten()
		return err
	}
	s.dropInput(b.ID)
	s.log.Info("batch "+string(to), zap.String("batch", b.ID), zap.Int("completed", nOK), zap.Int("failed", nFailed))
	return nil
}

const expiredMessage = "This request could not be executed before the completion window expired."

// writeLines writes the output lines of a batch's lines matching cond.
func (s *Store) writeLines(ctx context.Context, w io.Writer, batchID, cond string) error {
	rows, err := s.db.QueryContext(ctx, `SELECT custom_id, req_id, done, request_id, status_code, response, error_code, error_message
		FROM lines WHERE batch_id = ? AND `+cond+` ORDER BY line_no`, batchID)
	if err != nil {
		return err
	}
	defer rows.Close()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw) // one line per Encode
	enc.SetEscapeHTML(false)
	for rows.Next() {
		var line OutputLine
		var done bool
		var requestID, code, msg sql.NullString
		var status sql.NullInt64
		var body []byte
		if err := rows.Scan(&line.CustomID, &line.ID, &done, &requestID, &status, &body, &code, &msg); err != nil {
			return err
		}
		switch {
		case !done:
			line.Error = &LineError{Code: "batch_expired", Message: expiredMessage}
		case code.Valid:
			line.Error = &LineError{Code: code.String, Message: msg.String}
		default:
			line.Response = &LineResponse{StatusCode: int(status.Int64), RequestID: requestID.String, Body: body}
		}
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return bw.Flush()
}
