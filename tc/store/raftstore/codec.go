package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// errCorrupt is wrapped by every decoding error: the bytes are not a value
// of the format they were read as (truncated, a length past the end, an
// unknown tag). Decoding reads nothing past its input and allocates no more
// than the input's size, whatever the bytes say.
var errCorrupt = errors.New("raftstore: corrupt encoding")

// writer appends the primitive values of every encoding in this package:
// unsigned and signed varints, and length-prefixed strings and bytes.
type writer struct{ b []byte }

func (w *writer) byte(v byte)      { w.b = append(w.b, v) }
func (w *writer) uint(v uint64)    { w.b = binary.AppendUvarint(w.b, v) }
func (w *writer) int(v int64)      { w.b = binary.AppendVarint(w.b, v) }
func (w *writer) bool(v bool)      { w.byte(boolByte(v)) }
func (w *writer) str(v string)     { w.uint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) bytes(v []byte)   { w.uint(uint64(len(v))); w.b = append(w.b, v...) }
func (w *writer) time(t time.Time) { w.int(unixNano(t)) }

// optBytes writes v keeping nil apart from empty.
func (w *writer) optBytes(v []byte) {
	if v == nil {
		w.byte(0)
		return
	}
	w.byte(1)
	w.bytes(v)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// reader reads what writer wrote. The first error sticks: later reads
// return zero values, and err says what was wrong first.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{errCorrupt}, args...)...)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("unexpected end")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad unsigned varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) int() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad signed varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bool() bool {
	switch r.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.fail("bad boolean")
	return false
}

// span returns the next n bytes, sharing r's input.
func (r *reader) span() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length %d past the end (%d bytes left)", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.span()) }

// bytes returns a copy of the next length-prefixed bytes.
func (r *reader) bytes() []byte {
	s := r.span()
	if s == nil {
		return nil
	}
	return append([]byte{}, s...)
}

func (r *reader) optBytes() []byte {
	if !r.bool() {
		return nil
	}
	if v := r.bytes(); v != nil {
		return v
	}
	return []byte{}
}

func (r *reader) time() time.Time { return fromUnixNano(r.int()) }

// count reads a number of elements that follow, each at least min bytes
// long, so a count larger than the input could hold is refused before
// anything is allocated for it.
func (r *reader) count(min int) int {
	n := r.uint()
	if r.err != nil {
		return 0
	}
	if n > uint64(len(r.b)/min) {
		r.fail("count %d larger than the %d bytes left can hold", n, len(r.b))
		return 0
	}
	return int(n)
}

// done fails r unless every byte was read.
func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// unixNano is t in nanoseconds since the epoch, with the zero time as 0.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is the inverse of unixNano, in UTC.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
