package sqlmetric

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

// Query is one query on one connection: a scaler.Probe with no change
// signals of its own.
type Query struct {
	scaler.NoChanges

	// Connection is the name of the connection it runs on.
	Connection string
	// SQL is the statement.
	SQL string
	// Args are its bind parameters.
	Args []any

	querier Querier
	limits  limits
	convert Converter
	closing context.Context
	metrics *Metrics
}

// Key implements scaler.Probe: the connection, the SQL and the arguments,
// readable in logs (no NUL or control characters): connection|"sql"|["arg"
// ...]. The connection cannot hold '|' and the rest is quoted, so the key
// is unambiguous.
func (q *Query) Key() string {
	return fmt.Sprintf("%s|%q|%q", q.Connection, q.SQL, q.Args)
}

// Read implements scaler.Probe.
func (q *Query) Read(ctx context.Context) (scaler.Reading, error) {
	v, err := q.Value(ctx)
	return scaler.Reading{Value: v}, err
}

// errTooManyRows stops reading once MAX_ROWS is passed.
var errTooManyRows = errors.New("too many rows")

// RowTooLargeError is a row larger than MAX_ROW_BYTES, as a Querier
// reports it; Query reports every one the same way, whatever the driver.
type RowTooLargeError struct {
	// Bytes is the row's size as the driver saw it.
	Bytes int
}

func (e *RowTooLargeError) Error() string {
	return fmt.Sprintf("a row of %d bytes", e.Bytes)
}

// errClosed is the cause of the cancellation of queries at Close.
var errClosed = errors.New("the scaler is shutting down")

// Value runs the query under QUERY_TIMEOUT (plus the margin) and applies
// the value rule (see the package doc). A query still running when the
// Backend is closed is cancelled.
func (q *Query) Value(ctx context.Context) (float64, error) {
	if q.closing.Err() != nil {
		return 0, status.Error(codes.Unavailable, errClosed.Error())
	}
	qctx, cancel := context.WithTimeoutCause(ctx, q.limits.timeout+q.limits.margin, context.DeadlineExceeded)
	defer cancel()
	stop := context.AfterFunc(q.closing, cancel)
	defer stop()

	var rows int
	var first any
	var rowErr error
	err := q.querier.Query(qctx, q.SQL, q.Args, func(v any) error {
		rows++
		switch {
		case rows > q.limits.maxRows:
			rowErr = errTooManyRows
		case rows == 1:
			first = v
		}
		return rowErr
	})
	var tooLarge *RowTooLargeError
	switch {
	case errors.Is(err, errTooManyRows):
		q.metrics.refused(LimitRows)
		return 0, status.Errorf(codes.ResourceExhausted,
			"query returned more than MAX_ROWS=%d rows: count in SQL instead, e.g. select count(*) from ...", q.limits.maxRows)
	case errors.As(err, &tooLarge):
		q.metrics.refused(LimitRowBytes)
		return 0, status.Errorf(codes.ResourceExhausted,
			"the database sent %v, more than MAX_ROW_BYTES=%d: select a number, not a large value", tooLarge, q.limits.maxRowBytes)
	case err == nil:
		return valueOf(rows, first, q.convert), nil
	case rowErr != nil:
		return 0, err
	case q.closing.Err() != nil && ctx.Err() == nil:
		return 0, status.Errorf(codes.Unavailable, "%v: the query was cancelled", errClosed)
	case ctx.Err() != nil:
		// The caller's deadline (BACKEND_TIMEOUT) or cancellation: its
		// own error, for scalerkit to report, whatever the driver said.
		return 0, fmt.Errorf("the query was cancelled: %w", ctx.Err())
	case status.Code(err) != codes.Unknown:
		return 0, err // the driver knew the cause
	case qctx.Err() != nil:
		return 0, status.Errorf(codes.DeadlineExceeded, "the query did not finish within QUERY_TIMEOUT=%v and was cancelled: %v", q.limits.timeout, err)
	}
	return 0, err
}

// CheckSelect accepts one query statement: after comments, white space
// and opening parentheses it must start with SELECT, WITH, VALUES or
// TABLE. It is the first of several guards, not the one to rely on: the
// read-only transaction is (a WITH can hold a DELETE; "select 1; delete"
// starts with SELECT), and the drivers refuse several statements.
func CheckSelect(sql string) error {
	s := sql
	for {
		s = strings.TrimLeftFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '(' })
		switch {
		case strings.HasPrefix(s, "--"):
			if i := strings.IndexByte(s, '\n'); i >= 0 {
				s = s[i+1:]
				continue
			}
			s = ""
		case strings.HasPrefix(s, "/*"):
			if i := strings.Index(s, "*/"); i >= 0 {
				s = s[i+2:]
				continue
			}
			s = ""
		}
		break
	}
	word := s
	if i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }); i >= 0 {
		word = s[:i]
	}
	switch strings.ToLower(word) {
	case "select", "with", "values", "table":
		return nil
	}
	return errors.New("a single SELECT (or WITH ... SELECT) statement")
}
