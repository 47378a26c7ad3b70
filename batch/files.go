package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"go.uber.org/zap"
)

// CreateFile stores an upload for owner. Only purpose "batch" is accepted
// (the runner writes the "batch_output" files itself). Over MaxFileBytes is
// a KindTooLarge error, over MaxFileLines (lines that are not blank) a
// KindInvalid one with code CodeTooManyLines; either way nothing is kept.
// The content is not parsed here: the batch's validation reports bad lines
// with their numbers.
func (s *Store) CreateFile(ctx context.Context, owner, purpose, filename string, r io.Reader) (*File, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if purpose != PurposeBatch {
		return nil, errorf(KindInvalid, "purpose", "", "purpose %q is not supported here: upload batch input files with purpose %q", purpose, PurposeBatch)
	}
	if filename == "" || len(filename) > 255 || !utf8.ValidString(filename) {
		return nil, errorf(KindInvalid, "file", "", "the file needs a name of 1 to 255 bytes of UTF-8")
	}
	id := newID("file-")
	n, lines, err := s.writeFile(id, s.cfg.MaxFileBytes, s.cfg.MaxFileLines, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
	if err != nil {
		var be *Error
		if errors.As(err, &be) {
			return nil, be
		}
		return nil, errorf(KindInvalid, "file", "", "reading the upload: %v", err)
	}
	f := &File{ID: id, Object: "file", Bytes: n, CreatedAt: s.unix(), Filename: filename, Purpose: purpose, Status: "processed"}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO files (id, owner, purpose, filename, bytes, lines, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		f.ID, owner, f.Purpose, f.Filename, f.Bytes, lines, f.CreatedAt); err != nil {
		os.Remove(s.filePath(id))
		return nil, fmt.Errorf("batch: recording file %s: %w", id, err)
	}
	s.log.Info("file stored", zap.String("file", id), zap.Int64("bytes", n), zap.Int("lines", lines))
	return f, nil
}

// writeFile writes files/<id> through fill: into <id>.part first, synced,
// then renamed, so that the folder never holds a partial file under an id.
// It returns the bytes and the non-blank lines written; over maxBytes or
// maxLines (0: no limit) fill's writes fail and nothing is kept.
func (s *Store) writeFile(id string, maxBytes int64, maxLines int, fill func(io.Writer) error) (int64, int, error) {
	final := s.filePath(id)
	part := final + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, err
	}
	cw := &limitCounter{w: f, maxBytes: maxBytes, maxLines: maxLines}
	err = fill(cw)
	if err == nil {
		err = cw.finish()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, final)
	}
	if err == nil {
		err = syncDir(s.filesDir())
	}
	if err != nil {
		os.Remove(part)
		return 0, 0, err
	}
	return cw.bytes, cw.lines, nil
}

// blank reports whether a line holds only spaces, tabs and line ends: such
// lines are not requests (a trailing newline, an empty last line). Upload
// counting and validation share it so that they count the same lines.
func blank(line []byte) bool {
	for _, c := range line {
		if !blankByte(c) {
			return false
		}
	}
	return true
}

func blankByte(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// limitCounter counts the bytes and the non-blank lines written through it
// and refuses to pass a limit (0: none).
type limitCounter struct {
	w          io.Writer
	maxBytes   int64
	maxLines   int
	bytes      int64
	lines      int
	lineCounts bool // the current line has a non-blank byte
}

func (l *limitCounter) Write(p []byte) (int, error) {
	if l.maxBytes > 0 && l.bytes+int64(len(p)) > l.maxBytes {
		return 0, errorf(KindTooLarge, "file", CodeFileTooLarge, "the file is larger than the limit of %d bytes", l.maxBytes)
	}
	for _, c := range p {
		switch {
		case c == '\n':
			l.endLine()
		case !blankByte(c):
			l.lineCounts = true
		}
	}
	if l.maxLines > 0 && l.lines > l.maxLines {
		return 0, l.tooMany()
	}
	n, err := l.w.Write(p)
	l.bytes += int64(n)
	return n, err
}

func (l *limitCounter) endLine() {
	if l.lineCounts {
		l.lines++
	}
	l.lineCounts = false
}

// finish counts a last line without a newline and checks the line limit.
func (l *limitCounter) finish() error {
	l.endLine()
	if l.maxLines > 0 && l.lines > l.maxLines {
		return l.tooMany()
	}
	return nil
}

func (l *limitCounter) tooMany() error {
	return errorf(KindInvalid, "file", CodeTooManyLines, "the file has more than the limit of %d requests (lines)", l.maxLines)
}

const fileCols = `id, purpose, filename, bytes, created_at`

func scanFile(row rowScanner) (*File, error) {
	f := &File{Object: "file", Status: "processed"}
	if err := row.Scan(&f.ID, &f.Purpose, &f.Filename, &f.Bytes, &f.CreatedAt); err != nil {
		return nil, err
	}
	return f, nil
}

// GetFile returns owner's file id.
func (s *Store) GetFile(ctx context.Context, owner, id string) (*File, error) {
	return getOwned(ctx, s, fileKind, owner, id, scanFile)
}

// ListFiles lists owner's files, newest first unless p.Order is "asc";
// Limit 1..10,000, default 10,000 (OpenAI's).
func (s *Store) ListFiles(ctx context.Context, owner string, p ListParams) (*List[File], error) {
	var filter string
	var args []any
	if p.Purpose != "" {
		filter, args = " AND purpose = ?", []any{p.Purpose}
	}
	return listPage(ctx, s, fileKind, owner, p, filter, args, func(r rowScanner) (File, string, error) {
		f, err := scanFile(r)
		if err != nil {
			return File{}, "", err
		}
		return *f, f.ID, nil
	})
}

// FileContent opens owner's file id for reading; the caller closes it.
// The content is the bytes stored, served as is (application/jsonl).
func (s *Store) FileContent(ctx context.Context, owner, id string) (*File, io.ReadSeekCloser, error) {
	f, err := s.GetFile(ctx, owner, id)
	if err != nil {
		return nil, nil, err
	}
	r, err := os.Open(s.filePath(f.ID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fileKind.notFound(id)
	}
	if err != nil {
		return nil, nil, err
	}
	return f, r, nil
}

// DeleteFile removes owner's file id. Batches that use it as input keep
// running (they hold their own link to it); a deleted output file is gone
// for good, as at OpenAI.
func (s *Store) DeleteFile(ctx context.Context, owner, id string) (*FileDeleted, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	if !validID(fileKind.prefix, id) {
		return nil, fileKind.notFound(id)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM files WHERE id = ? AND owner = ?`, id, owner)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 0 {
		return nil, fileKind.notFound(id)
	}
	// The row is gone, so the file is unreachable; a file that cannot be
	// removed now is removed by the sweep at the next Open.
	if err := os.Remove(s.filePath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("removing a deleted file", zap.String("file", id), zap.Error(err))
	}
	s.log.Info("file deleted", zap.String("file", id))
	return &FileDeleted{ID: id, Object: "file", Deleted: true}, nil
}

// objectKind describes files or batches for the lookups they share.
type objectKind struct {
	table, cols        string
	prefix             string // of the ids
	param, name        string // of not-found errors
	defLimit, maxLimit int    // of lists, OpenAI's
}

var (
	fileKind  = objectKind{"files", fileCols, "file-", "file_id", "File", 10_000, 10_000}
	batchKind = objectKind{"batches", batchCols, "batch_", "batch_id", "Batch", 20, 100}
)

func (k objectKind) notFound(id string) *Error {
	return errorf(KindNotFound, k.param, "", "No such %s object: %s", k.name, id)
}

type rowScanner interface{ Scan(...any) error }

// getOwned reads owner's object id. An id of the wrong form (a path, say)
// is never looked up, and another owner's object is not found either.
func getOwned[T any](ctx context.Context, s *Store, k objectKind, owner, id string, scan func(rowScanner) (T, error)) (T, error) {
	var zero T
	if s.isClosed() {
		return zero, ErrClosed
	}
	if !validID(k.prefix, id) {
		return zero, k.notFound(id)
	}
	v, err := scan(s.db.QueryRowContext(ctx, `SELECT `+k.cols+` FROM `+k.table+` WHERE id = ? AND owner = ?`, id, owner))
	if errors.Is(err, sql.ErrNoRows) {
		return zero, k.notFound(id)
	}
	return v, err
}

// listPage is OpenAI's cursor pagination over owner's objects of kind k,
// in creation order (seq): after names the last object of the previous
// page; filter narrows the rows (" AND ...").
func listPage[T any](ctx context.Context, s *Store, k objectKind, owner string, p ListParams,
	filter string, filterArgs []any, scan func(rowScanner) (T, string, error)) (*List[T], error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	limit := p.Limit
	if limit == 0 {
		limit = k.defLimit
	}
	if limit < 1 || limit > k.maxLimit {
		return nil, errorf(KindInvalid, "limit", "", "limit must be between 1 and %d", k.maxLimit)
	}
	order, cmp := "DESC", "<"
	switch p.Order {
	case "", "desc":
	case "asc":
		order, cmp = "ASC", ">"
	default:
		return nil, errorf(KindInvalid, "order", "", "order must be asc or desc")
	}
	where := "owner = ?" + filter
	args := append([]any{owner}, filterArgs...)
	if p.After != "" {
		var seq int64
		err := s.db.QueryRowContext(ctx, `SELECT seq FROM `+k.table+` WHERE id = ? AND owner = ?`, p.After, owner).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, errorf(KindInvalid, "after", "", "after: no such object: %s", p.After)
		}
		if err != nil {
			return nil, err
		}
		where += " AND seq " + cmp + " ?"
		args = append(args, seq)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+k.cols+` FROM `+k.table+` WHERE `+where+` ORDER BY seq `+order+` LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := &List[T]{Object: "list", Data: []T{}}
	var ids []string
	for rows.Next() {
		v, id, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out.Data = append(out.Data, v)
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out.Data) > limit {
		out.HasMore = true
		out.Data, ids = out.Data[:limit], ids[:limit]
	}
	if len(ids) > 0 {
		out.FirstID, out.LastID = &ids[0], &ids[len(ids)-1]
	}
	return out, nil
}
