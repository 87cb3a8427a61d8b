package service

import (
	khttp "github.com/go-kratos/kratos/v2/transport/http"
)

// ErrorBody is the JSON body of an error answer: {"error":"..."}.
type ErrorBody struct {
	Error string `json:"error"` // what was wrong
}

// Fail answers code with {"error": msg}.
func Fail(c khttp.Context, code int, msg string) error {
	return c.JSON(code, ErrorBody{Error: msg})
}
