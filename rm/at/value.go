package at

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// Type is the type a Value keeps through the undo log.
type Type uint8

// Value types.
const (
	TypeNull Type = iota
	// TypeInt is a signed 64-bit integer.
	TypeInt
	// TypeUint is an unsigned 64-bit integer (MySQL BIGINT UNSIGNED).
	TypeUint
	// TypeFloat is a 64-bit float (FLOAT columns hold float32 values).
	TypeFloat
	// TypeText is text kept as its exact bytes: strings, DECIMAL,
	// DATETIME and JSON as the database prints them.
	TypeText
	// TypeBytes is binary data.
	TypeBytes
	// TypeTime is a time.Time, for drivers that parse temporal columns.
	TypeTime
)

// Value is one column value of an image, typed so that it binds back to
// exactly the value it was read as.
type Value struct {
	Type  Type
	Int   int64
	Uint  uint64
	Float float64
	Bytes []byte
	Time  time.Time
}

// Arg returns the value as a database/sql driver argument.
func (v Value) Arg() any {
	switch v.Type {
	case TypeInt:
		return v.Int
	case TypeUint:
		return v.Uint
	case TypeFloat:
		return v.Float
	case TypeText:
		return string(v.Bytes)
	case TypeBytes:
		return v.Bytes
	case TypeTime:
		return v.Time
	}
	return nil
}

// Equal reports whether v and w are the same value of the same type.
func (v Value) Equal(w Value) bool {
	if v.Type != w.Type {
		return false
	}
	switch v.Type {
	case TypeInt:
		return v.Int == w.Int
	case TypeUint:
		return v.Uint == w.Uint
	case TypeFloat:
		return v.Float == w.Float || (v.Float != v.Float && w.Float != w.Float)
	case TypeText, TypeBytes:
		return bytes.Equal(v.Bytes, w.Bytes)
	case TypeTime:
		return v.Time.Equal(w.Time)
	}
	return true
}

// String formats the value for messages and lock keys.
func (v Value) String() string {
	switch v.Type {
	case TypeInt:
		return strconv.FormatInt(v.Int, 10)
	case TypeUint:
		return strconv.FormatUint(v.Uint, 10)
	case TypeFloat:
		return strconv.FormatFloat(v.Float, 'g', -1, 64)
	case TypeText:
		return string(v.Bytes)
	case TypeBytes:
		return fmt.Sprintf("x'%x'", v.Bytes)
	case TypeTime:
		return v.Time.Format(time.RFC3339Nano)
	}
	return "NULL"
}

// Row is the values of one row, in the order of its table image's columns.
type Row []Value

func (r Row) equal(s Row) bool {
	if len(r) != len(s) {
		return false
	}
	for i := range r {
		if !r[i].Equal(s[i]) {
			return false
		}
	}
	return true
}
