package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/stele-log/stele"
)

// statusOf is the one table from error kinds to HTTP statuses.
func statusOf(err error) int {
	if err == nil {
		return http.StatusOK
	}
	switch stele.KindOf(err) {
	case stele.KindInvalid:
		return http.StatusBadRequest
	case stele.KindUnauthenticated:
		return http.StatusUnauthorized
	case stele.KindForbidden:
		return http.StatusForbidden
	case stele.KindNotFound:
		return http.StatusNotFound
	case stele.KindConflict:
		return http.StatusConflict
	case stele.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case stele.KindUnsupported:
		return http.StatusUnsupportedMediaType
	case stele.KindRateLimited:
		return http.StatusTooManyRequests
	case stele.KindPushback, stele.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// writeError answers err as JSON. Internal errors are reduced to a generic
// message: their details stay in the server's log.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	d := errorDetail{Code: stele.KindOf(err).String(), Message: "internal error"}
	var e *stele.Error
	if errors.As(err, &e) && e.Kind != stele.KindInternal {
		d.Message, d.Field = e.Message, e.Field
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
		}
	}
	if errors.Is(err, r.Context().Err()) && r.Context().Err() != nil {
		return // the client is gone
	}
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="stele"`)
	case http.StatusServiceUnavailable:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	case http.StatusRequestEntityTooLarge:
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, status, errorBody{Error: d})
}

// writeJSON answers v as JSON with status. HTML characters are not escaped:
// the API is not HTML, and the dashboard escapes on output.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
