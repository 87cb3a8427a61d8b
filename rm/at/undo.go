package at

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// UndoLog is what a branch needs to undo its local transaction: for every
// row it touched, the row before its first change and after its last.
type UndoLog struct {
	Tables []*TableImage
}

// TableImage holds the rows one branch touched in one table.
type TableImage struct {
	// Table is the table's name as statements wrote it (schema-qualified
	// when they qualified it).
	Table string
	// Columns names the values of every Row, in table order.
	Columns []string
	// PK holds the positions of the primary key's columns in Columns.
	PK []int
	// Rows are in the order the branch first touched them.
	Rows []RowImage

	index map[string]int
}

// RowImage is one row before and after the branch. A nil Before means the
// branch inserted the row; a nil After means it deleted it.
type RowImage struct {
	Before Row
	After  Row
}

// image returns the after image, or the before image of a deleted row; nil
// for a row the branch inserted and deleted again.
func (r RowImage) image() Row {
	if r.After != nil {
		return r.After
	}
	return r.Before
}

// pkKey is the row's primary key in lock-key form (tcv1.LockPK).
func (t *TableImage) pkKey(r Row) string {
	if len(t.PK) == 1 {
		return tcv1.EscapeLockKey(r[t.PK[0]].String())
	}
	values := make([]string, len(t.PK))
	for i, p := range t.PK {
		values[i] = r[p].String()
	}
	return tcv1.LockPK(values...)
}

// table returns the image of the named table, adding it on first use.
func (u *UndoLog) table(m *TableMeta) *TableImage {
	for _, t := range u.Tables {
		if t.Table == m.Name {
			return t
		}
	}
	t := &TableImage{Table: m.Name, PK: m.PK, index: map[string]int{}}
	for _, c := range m.Columns {
		t.Columns = append(t.Columns, c.Name)
	}
	u.Tables = append(u.Tables, t)
	return t
}

// add merges one statement's images of a table: before holds the rows as
// they were, after the rows as they are (rows absent from after are gone).
func (u *UndoLog) add(m *TableMeta, before, after []Row) {
	t := u.table(m)
	if t.index == nil {
		t.rebuildIndex()
	}
	afterByKey := make(map[string]Row, len(after))
	var order []string
	for _, r := range before {
		k := t.pkKey(r)
		if _, ok := t.index[k]; !ok {
			t.index[k] = len(t.Rows)
			t.Rows = append(t.Rows, RowImage{Before: r})
		}
		order = append(order, k)
	}
	for _, r := range after {
		k := t.pkKey(r)
		afterByKey[k] = r
		if _, ok := t.index[k]; !ok {
			t.index[k] = len(t.Rows)
			t.Rows = append(t.Rows, RowImage{})
		}
		order = append(order, k)
	}
	for _, k := range order {
		t.Rows[t.index[k]].After = afterByKey[k]
	}
}

func (t *TableImage) rebuildIndex() {
	t.index = make(map[string]int, len(t.Rows))
	for i, r := range t.Rows {
		if img := r.image(); img != nil {
			t.index[t.pkKey(img)] = i
		}
	}
}

// empty reports whether the log holds no row that exists before or after.
func (u *UndoLog) empty() bool {
	for _, t := range u.Tables {
		if t.touched() {
			return false
		}
	}
	return true
}

// touched reports whether some row of t exists before or after the branch.
func (t *TableImage) touched() bool {
	for _, r := range t.Rows {
		if r.image() != nil {
			return true
		}
	}
	return false
}

// LockKeys returns the global lock keys of every row in the log, in the
// protocol's encoding (see tcv1.ParseLockKeys): "table:pk1,pk2;table2:pk3".
func (u *UndoLog) LockKeys() string {
	var sb strings.Builder
	for _, t := range u.Tables {
		if !t.touched() {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(';')
		}
		sb.WriteString(tcv1.EscapeLockKey(t.Table))
		sb.WriteByte(':')
		first := true
		for _, r := range t.Rows {
			img := r.image()
			if img == nil {
				continue
			}
			if !first {
				sb.WriteByte(',')
			}
			first = false
			sb.WriteString(t.pkKey(img))
		}
	}
	return sb.String()
}

// Undo log encoding: magic, version, flags, then (deflated when flagged)
// the body of uvarint counts, length-prefixed strings and typed values.
const (
	undoMagic      = "GTXU"
	undoVersion    = 1
	flagCompressed = 1
)

// Marshal encodes the log, deflating the body when it is longer than
// compressAbove bytes (0 never compresses).
func (u *UndoLog) Marshal(compressAbove int) ([]byte, error) {
	var body bytes.Buffer
	w := &undoWriter{buf: &body}
	w.uvarint(uint64(len(u.Tables)))
	for _, t := range u.Tables {
		w.str(t.Table)
		w.uvarint(uint64(len(t.Columns)))
		for _, c := range t.Columns {
			w.str(c)
		}
		w.uvarint(uint64(len(t.PK)))
		for _, p := range t.PK {
			w.uvarint(uint64(p))
		}
		w.uvarint(uint64(len(t.Rows)))
		for _, r := range t.Rows {
			var present byte
			if r.Before != nil {
				present |= 1
			}
			if r.After != nil {
				present |= 2
			}
			w.buf.WriteByte(present)
			for _, img := range []Row{r.Before, r.After} {
				if img == nil {
					continue
				}
				if len(img) != len(t.Columns) {
					return nil, fmt.Errorf("at: image of %s has %d values for %d columns", t.Table, len(img), len(t.Columns))
				}
				for _, v := range img {
					if err := w.value(v); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	out := []byte(undoMagic)
	out = append(out, undoVersion, 0)
	if compressAbove <= 0 || body.Len() <= compressAbove {
		return append(out, body.Bytes()...), nil
	}
	out[len(out)-1] = flagCompressed
	buf := bytes.NewBuffer(out)
	fw, err := flate.NewWriter(buf, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(body.Bytes()); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type undoWriter struct {
	buf     *bytes.Buffer
	scratch [binary.MaxVarintLen64]byte
}

func (w *undoWriter) uvarint(x uint64) {
	w.buf.Write(w.scratch[:binary.PutUvarint(w.scratch[:], x)])
}

func (w *undoWriter) str(s string) {
	w.uvarint(uint64(len(s)))
	w.buf.WriteString(s)
}

func (w *undoWriter) value(v Value) error {
	w.buf.WriteByte(byte(v.Type))
	switch v.Type {
	case TypeNull:
	case TypeInt:
		w.buf.Write(w.scratch[:binary.PutVarint(w.scratch[:], v.Int)])
	case TypeUint:
		w.uvarint(v.Uint)
	case TypeFloat:
		w.uvarint(math.Float64bits(v.Float))
	case TypeText, TypeBytes:
		w.uvarint(uint64(len(v.Bytes)))
		w.buf.Write(v.Bytes)
	case TypeTime:
		b, err := v.Time.MarshalBinary()
		if err != nil {
			return fmt.Errorf("at: encode time %v: %w", v.Time, err)
		}
		w.uvarint(uint64(len(b)))
		w.buf.Write(b)
	default:
		return fmt.Errorf("at: cannot encode value type %d", v.Type)
	}
	return nil
}

// maxUndoBody bounds a decompressed undo log, against damaged input.
const maxUndoBody = 1 << 30

// UnmarshalUndoLog decodes a log written by Marshal. Damaged input gives an
// error matching ErrUndoLog.
func UnmarshalUndoLog(data []byte) (*UndoLog, error) {
	if len(data) < len(undoMagic)+2 || string(data[:len(undoMagic)]) != undoMagic {
		return nil, fmt.Errorf("%w: bad header", ErrUndoLog)
	}
	if v := data[len(undoMagic)]; v != undoVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrUndoLog, v, undoVersion)
	}
	flags := data[len(undoMagic)+1]
	body := data[len(undoMagic)+2:]
	if flags&flagCompressed != 0 {
		fr := flate.NewReader(bytes.NewReader(body))
		b, err := io.ReadAll(io.LimitReader(fr, maxUndoBody+1))
		if err != nil {
			return nil, fmt.Errorf("%w: inflate: %v", ErrUndoLog, err)
		}
		if len(b) > maxUndoBody {
			return nil, fmt.Errorf("%w: body over %d bytes", ErrUndoLog, maxUndoBody)
		}
		body = b
	} else if flags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrUndoLog, flags)
	}
	r := &undoReader{b: body}
	u := &UndoLog{}
	nt := r.count()
	for i := 0; i < nt && r.err == nil; i++ {
		t := &TableImage{Table: r.str()}
		nc := r.count()
		for j := 0; j < nc && r.err == nil; j++ {
			t.Columns = append(t.Columns, r.str())
		}
		np := r.count()
		for j := 0; j < np && r.err == nil; j++ {
			p := r.count()
			if p >= len(t.Columns) {
				r.fail("primary key column %d out of %d", p, len(t.Columns))
			}
			t.PK = append(t.PK, p)
		}
		if len(t.PK) == 0 && r.err == nil {
			r.fail("table %s has no primary key", t.Table)
		}
		nr := r.count()
		for j := 0; j < nr && r.err == nil; j++ {
			present := r.byte()
			if present&^3 != 0 {
				r.fail("bad row flags %#x", present)
			}
			var img RowImage
			if present&1 != 0 {
				img.Before = r.row(len(t.Columns))
			}
			if present&2 != 0 {
				img.After = r.row(len(t.Columns))
			}
			t.Rows = append(t.Rows, img)
		}
		u.Tables = append(u.Tables, t)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	for _, t := range u.Tables {
		t.rebuildIndex()
	}
	return u, nil
}

type undoReader struct {
	b   []byte
	err error
}

func (r *undoReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrUndoLog}, args...)...)
	}
}

func (r *undoReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return x
}

// count reads a length that must fit in what is left of the input.
func (r *undoReader) count() int {
	x := r.uvarint()
	if x > uint64(len(r.b)) {
		r.fail("count %d exceeds the %d bytes left", x, len(r.b))
		return 0
	}
	return int(x)
}

func (r *undoReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *undoReader) bytes() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	b := append([]byte{}, r.b[:n]...)
	r.b = r.b[n:]
	return b
}

func (r *undoReader) str() string { return string(r.bytes()) }

func (r *undoReader) row(n int) Row {
	row := make(Row, n)
	for i := range row {
		row[i] = r.value()
	}
	return row
}

func (r *undoReader) value() Value {
	v := Value{Type: Type(r.byte())}
	switch v.Type {
	case TypeNull:
	case TypeInt:
		if r.err != nil {
			return v
		}
		x, n := binary.Varint(r.b)
		if n <= 0 {
			r.fail("bad varint")
			return v
		}
		r.b = r.b[n:]
		v.Int = x
	case TypeUint:
		v.Uint = r.uvarint()
	case TypeFloat:
		v.Float = math.Float64frombits(r.uvarint())
	case TypeText, TypeBytes:
		v.Bytes = r.bytes()
	case TypeTime:
		b := r.bytes()
		if r.err == nil {
			if err := v.Time.UnmarshalBinary(b); err != nil {
				r.fail("bad time: %v", err)
			}
		}
	default:
		r.fail("unknown value type %d", v.Type)
	}
	return v
}
