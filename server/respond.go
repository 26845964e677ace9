package server

import (
	"context"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/flashsale/flashsale/engine"
)

// Answers. Bodies are built by appending to a pooled buffer (no reflection,
// no allocation once the buffer has grown) and copied into the response.

const contentTypeJSON = "application/json"

// Error codes the server adds to the engine's (engine.Error.Code).
const (
	codeBadRequest     = "bad_request"
	codeUnauthorized   = "unauthorized"
	codeNotFound       = "not_found"
	codeMethod         = "method_not_allowed"
	codeBodyTooLarge   = "body_too_large"
	codeHeaderTooLarge = "header_too_large"
	codeOverloaded     = "overloaded"
	codeTimeout        = "timeout"
	// codeRequestTimeout is a request not read in time (408): unlike
	// codeTimeout (504) it never reached the engine, so nothing was applied.
	codeRequestTimeout = "request_timeout"
	codeInternal       = "internal"
	codeSyncDisabled   = "sync_disabled"
	codeDrift          = "drift"
)

// apiError is an answer other than 2xx: status, code, message, and the
// optional fields that help (sku, available, limit).
type apiError struct {
	status    int
	code      string
	msg       string
	sku       string
	available int64
	limit     int64
	hasAvail  bool
	hasLimit  bool
}

// mapError turns an engine (or parser) error into its answer.
//
// Engine contract errors keep their code and status; item errors add sku and
// available or limit. A ctx deadline is 504 timeout: the change may still
// have been applied (it was waiting for its fsync), so the caller retries
// with the same id, and a retry answers replayed:true if it was applied.
func mapError(err error) apiError {
	var bad *badRequestError
	if errors.As(err, &bad) {
		return apiError{status: fasthttp.StatusBadRequest, code: codeBadRequest, msg: bad.msg}
	}
	if ce := engine.CodeOf(err); ce != nil {
		a := apiError{status: ce.Status, code: ce.Code, msg: err.Error()}
		var ie *engine.ItemError
		if errors.As(err, &ie) {
			a.sku = ie.SKU
			switch ie.Err {
			case engine.ErrInsufficientStock, engine.ErrSoldOut:
				a.available, a.hasAvail = ie.Available, true
			case engine.ErrUserLimitExceeded:
				a.limit, a.hasLimit = ie.Limit, true
			}
		}
		return a
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return apiError{status: fasthttp.StatusGatewayTimeout, code: codeTimeout,
			msg: "the request timed out; it may have been applied: retry with the same id (a retry of an applied change answers replayed:true)"}
	}
	return apiError{status: fasthttp.StatusInternalServerError, code: codeInternal, msg: err.Error()}
}

// overloaded is the answer when a bound on in-flight work is reached.
var overloaded = apiError{status: fasthttp.StatusServiceUnavailable, code: codeOverloaded,
	msg: "too many requests in flight; nothing was applied, retry after Retry-After seconds"}

var retryAfter = []byte(strconv.Itoa(RetryAfterSeconds))

// writeError writes a as the response, using buf as scratch; it returns the
// grown buffer.
func writeError(ctx *fasthttp.RequestCtx, buf []byte, a apiError) []byte {
	b := append(buf[:0], `{"code":`...)
	b = appendJSONString(b, a.code)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, a.msg)
	if a.sku != "" {
		b = append(b, `,"sku":`...)
		b = appendJSONString(b, a.sku)
	}
	if a.hasAvail {
		b = append(b, `,"available":`...)
		b = strconv.AppendInt(b, a.available, 10)
	}
	if a.hasLimit {
		b = append(b, `,"limit":`...)
		b = strconv.AppendInt(b, a.limit, 10)
	}
	b = append(b, '}')
	if a.code == codeOverloaded || a.code == engine.ErrUnavailable.Code {
		ctx.Response.Header.SetBytesV("Retry-After", retryAfter)
	}
	if a.status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="flashsale admin"`)
	}
	writeJSON(ctx, a.status, b)
	return b
}

// writeJSON sets the status, the JSON content type and a copy of body.
func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(body)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendResult appends a change's success body: {"<idKey>":id,"status":...,
// ["expires_at_ms":...,]"seq":...,"replayed":...}. id is a validated id, so
// it needs no escaping.
func appendResult(b []byte, idKey string, id []byte, status string, res engine.Result, expires bool) []byte {
	b = append(b, `{"`...)
	b = append(b, idKey...)
	b = append(b, `":"`...)
	b = append(b, id...)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	b = append(b, '"')
	if expires {
		b = append(b, `,"expires_at_ms":`...)
		b = strconv.AppendInt(b, res.ExpiresAtMs, 10)
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, res.Seq, 10)
	b = append(b, `,"replayed":`...)
	b = strconv.AppendBool(b, res.Replayed)
	return append(b, '}')
}

// appendSKU appends a SKU's state as GET /v1/skus/{sku} answers it.
func appendSKU(b []byte, s engine.SKUState) []byte {
	b = append(b, `{"sku":`...)
	b = appendJSONString(b, s.SKU)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, s.Total, 10)
	b = append(b, `,"available":`...)
	b = strconv.AppendInt(b, s.Available, 10)
	b = append(b, `,"reserved":`...)
	b = strconv.AppendInt(b, s.Reserved, 10)
	b = append(b, `,"sold":`...)
	b = strconv.AppendInt(b, s.Sold, 10)
	b = append(b, `,"sold_out":`...)
	b = strconv.AppendBool(b, s.SoldOut)
	b = append(b, `,"limit_per_user":`...)
	b = strconv.AppendInt(b, s.LimitPerUser, 10)
	return append(b, '}')
}
