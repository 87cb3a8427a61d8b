package service

import (
	"unicode/utf8"

	khttp "github.com/go-kratos/kratos/v2/transport/http"
)

// ClipLen is how many bytes of an input Clip keeps.
const ClipLen = 64

// Clip returns s cut to at most ClipLen bytes at a character boundary, with
// "…" when it was cut, so an answer or a log line never echoes a huge input
// whole.
func Clip(s string) string {
	if len(s) <= ClipLen {
		return s
	}
	cut := ClipLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ErrorBody is the JSON body of an error answer: {"error":"..."}.
type ErrorBody struct {
	Error string `json:"error"` // what was wrong
}

// Fail answers code with {"error": msg}.
func Fail(c khttp.Context, code int, msg string) error {
	return c.JSON(code, ErrorBody{Error: msg})
}
