package at

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleLog() *UndoLog {
	m := &TableMeta{Name: "db.t", Columns: []Column{{Name: "id"}, {Name: "k"}, {Name: "v"}, {Name: "f"}, {Name: "b"}, {Name: "at"}, {Name: "n"}}, PK: []int{0, 1}}
	row := func(id int64, k string) Row {
		return Row{{Type: TypeInt, Int: id}, {Type: TypeText, Bytes: []byte(k)}, {Type: TypeUint, Uint: math.MaxUint64},
			{Type: TypeFloat, Float: 0.1 + 0.2}, {Type: TypeBytes, Bytes: []byte{0, 0xff, '%', ','}},
			{Type: TypeTime, Time: time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.FixedZone("x", 3600))}, {Type: TypeNull}}
	}
	u := &UndoLog{}
	u.add(m, []Row{row(1, "a_b"), row(2, "c")}, []Row{row(1, "a_b")})
	u.add(m, nil, []Row{row(-3, "d;e:f")})
	return u
}

func TestUndoRoundTrip(t *testing.T) {
	for _, compress := range []int{0, 1} {
		u := sampleLog()
		data, err := u.Marshal(compress)
		if err != nil {
			t.Fatal(err)
		}
		if got := data[len(undoMagic)+1] == flagCompressed; got != (compress > 0) {
			t.Fatalf("compress above %d: compressed=%v", compress, got)
		}
		back, err := UnmarshalUndoLog(data)
		if err != nil {
			t.Fatal(err)
		}
		got, want := back.Tables[0], u.Tables[0]
		if got.Table != want.Table || !reflect.DeepEqual(got.Columns, want.Columns) || !reflect.DeepEqual(got.PK, want.PK) || len(got.Rows) != len(want.Rows) {
			t.Fatalf("round trip changed the table:\n%+v\n%+v", got, want)
		}
		for i := range got.Rows {
			g, w := got.Rows[i], want.Rows[i]
			if (g.Before == nil) != (w.Before == nil) || (g.After == nil) != (w.After == nil) || !g.Before.equal(w.Before) || !g.After.equal(w.After) {
				t.Fatalf("row %d: got %+v, want %+v", i, g, w)
			}
		}
	}
}

func TestLockKeysEscape(t *testing.T) {
	got := sampleLog().LockKeys()
	want := "db.t:1_a%5Fb,2_c,-3_d%3Be%3Af"
	if got != want {
		t.Fatalf("lock keys %q, want %q", got, want)
	}
}

func TestUnmarshalDamaged(t *testing.T) {
	data, err := sampleLog().Marshal(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, []byte("GTXU"), append([]byte("GTXV"), data[4:]...), data[:len(data)-1], append(append([]byte{}, data...), 0)} {
		if _, err := UnmarshalUndoLog(bad); !errors.Is(err, ErrUndoLog) {
			t.Errorf("%q: got %v, want ErrUndoLog", bad, err)
		}
	}
}

// FuzzUnmarshalUndoLog checks that damaged input is refused, never
// panicking, and that what decodes encodes back to an equal log.
func FuzzUnmarshalUndoLog(f *testing.F) {
	for _, c := range []int{0, 1} {
		data, err := sampleLog().Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := UnmarshalUndoLog(data)
		if err != nil {
			if !errors.Is(err, ErrUndoLog) {
				t.Fatalf("error %v does not match ErrUndoLog", err)
			}
			return
		}
		again, err := u.Marshal(0)
		if err != nil {
			return // a row whose width differs from its columns: refused on encode
		}
		u2, err := UnmarshalUndoLog(again)
		if err != nil {
			t.Fatalf("re-encoded log does not decode: %v", err)
		}
		third, _ := u2.Marshal(0)
		if !bytes.Equal(again, third) {
			t.Fatal("encoding is not stable")
		}
	})
}

func TestDirtyWriteErrorMessage(t *testing.T) {
	e := &DirtyWriteError{XID: "x", BranchID: 7, Rows: []DirtyRow{{Table: "t", PK: "1", Columns: []string{"id", "v"},
		Expected: Row{{Type: TypeInt, Int: 1}, {Type: TypeText, Bytes: []byte("a")}}}}}
	if !errors.Is(e, ErrDirtyWrite) || !strings.Contains(e.Error(), "t:1 expected {id=1, v=a}, found no row") {
		t.Fatalf("%v", e)
	}
	changed := &DirtyWriteError{XID: "x", BranchID: 7, Rows: []DirtyRow{{Table: "t", PK: "1", Columns: []string{"id", "v"},
		Expected: Row{{Type: TypeInt, Int: 1}, {Type: TypeText, Bytes: []byte("a")}},
		Actual:   Row{{Type: TypeInt, Int: 1}, {Type: TypeText, Bytes: []byte("b")}}}}}
	if msg := changed.Error(); !strings.Contains(msg, "t:1 v expected a, found b;") || strings.Contains(msg, "id expected") {
		t.Fatalf("%v", msg)
	}
}
