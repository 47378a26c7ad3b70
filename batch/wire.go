package batch

import "encoding/json"

// The wire shapes below are OpenAI's (Files and Batch API objects, the batch
// input and output lines), field for field, so that the official SDKs decode
// them; nullable fields are pointers.

// File is OpenAI's File object.
type File struct {
	ID            string  `json:"id"`
	Object        string  `json:"object"` // always "file"
	Bytes         int64   `json:"bytes"`
	CreatedAt     int64   `json:"created_at"`
	ExpiresAt     *int64  `json:"expires_at"`
	Filename      string  `json:"filename"`
	Purpose       string  `json:"purpose"`
	Status        string  `json:"status"` // "processed": stored files are complete
	StatusDetails *string `json:"status_details"`
}

// FileDeleted answers DELETE /v1/files/{id}.
type FileDeleted struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // always "file"
	Deleted bool   `json:"deleted"`
}

// File purposes: clients upload "batch" files; the runner writes
// "batch_output" files (both the output and the error file, as OpenAI).
const (
	PurposeBatch       = "batch"
	PurposeBatchOutput = "batch_output"
)

// List is OpenAI's cursor page.
type List[T any] struct {
	Object  string  `json:"object"` // always "list"
	Data    []T     `json:"data"`
	FirstID *string `json:"first_id"`
	LastID  *string `json:"last_id"`
	HasMore bool    `json:"has_more"`
}

// Status is a batch's state.
type Status string

const (
	StatusValidating Status = "validating"
	StatusFailed     Status = "failed"
	StatusInProgress Status = "in_progress"
	StatusFinalizing Status = "finalizing"
	StatusCompleted  Status = "completed"
	StatusExpired    Status = "expired"
	StatusCancelling Status = "cancelling"
	StatusCancelled  Status = "cancelled"
)

// Terminal reports whether s is final.
func (s Status) Terminal() bool {
	switch s {
	case StatusFailed, StatusCompleted, StatusExpired, StatusCancelled:
		return true
	}
	return false
}

// Batch is OpenAI's Batch object.
type Batch struct {
	ID               string            `json:"id"`
	Object           string            `json:"object"` // always "batch"
	Endpoint         string            `json:"endpoint"`
	Errors           *BatchErrors      `json:"errors"`
	InputFileID      string            `json:"input_file_id"`
	CompletionWindow string            `json:"completion_window"`
	Status           Status            `json:"status"`
	OutputFileID     *string           `json:"output_file_id"`
	ErrorFileID      *string           `json:"error_file_id"`
	CreatedAt        int64             `json:"created_at"`
	InProgressAt     *int64            `json:"in_progress_at"`
	ExpiresAt        *int64            `json:"expires_at"`
	FinalizingAt     *int64            `json:"finalizing_at"`
	CompletedAt      *int64            `json:"completed_at"`
	FailedAt         *int64            `json:"failed_at"`
	ExpiredAt        *int64            `json:"expired_at"`
	CancellingAt     *int64            `json:"cancelling_at"`
	CancelledAt      *int64            `json:"cancelled_at"`
	RequestCounts    RequestCounts     `json:"request_counts"`
	Metadata         map[string]string `json:"metadata"`
}

// BatchErrors lists the validation errors of a failed batch.
type BatchErrors struct {
	Object string       `json:"object"` // always "list"
	Data   []BatchError `json:"data"`
}

// BatchError is one validation error; Line is 1-based.
type BatchError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
	Line    *int    `json:"line"`
}

// RequestCounts: completed are lines answered with a 2xx status, failed the
// lines in the error file (any other answer, an error, or batch_expired).
type RequestCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}

// CreateBatchParams is the body of POST /v1/batches.
type CreateBatchParams struct {
	InputFileID      string            `json:"input_file_id"`
	Endpoint         string            `json:"endpoint"`
	CompletionWindow string            `json:"completion_window"`
	Metadata         map[string]string `json:"metadata"`
}

// ListParams are OpenAI's list query parameters. Limit 0 means the
// endpoint's default; Order is "asc" or "desc" (default: newest first);
// Purpose filters files.
type ListParams struct {
	After   string
	Limit   int
	Order   string
	Purpose string
}

// InputLine is one line of a batch input file.
type InputLine struct {
	CustomID string          `json:"custom_id"`
	Method   string          `json:"method"`
	URL      string          `json:"url"`
	Body     json.RawMessage `json:"body"`
}

// OutputLine is one line of an output or error file: Response for an
// answered request (in the error file when its status is not 2xx), Error
// for one that got no answer (code "batch_expired", or the executor's
// failure).
type OutputLine struct {
	ID       string        `json:"id"` // batch_req_...
	CustomID string        `json:"custom_id"`
	Response *LineResponse `json:"response"`
	Error    *LineError    `json:"error"`
}

// LineResponse is an answered request.
type LineResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// LineError is a request that got no answer.
type LineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
