package idgen

import (
	"errors"
	"testing"
	"time"
)

func TestComposeParse(t *testing.T) {
	epoch := testEpoch
	tests := []struct {
		name  string
		parts Parts
		id    int64
	}{
		{"zero", Parts{Time: epoch}, 0},
		{"seq", Parts{Time: epoch, Seq: 1}, 1},
		{"node", Parts{Time: epoch, Node: 1}, 1 << 12},
		{"ms", Parts{Time: epoch.Add(time.Millisecond)}, 1 << 22},
		{"all max", Parts{Time: epoch.Add(MaxTime * time.Millisecond), Node: MaxNodeID, Seq: MaxSeq}, 1<<63 - 1},
		{"mixed", Parts{Time: epoch.Add(1234567 * time.Millisecond), Node: 513, Seq: 42}, 1234567<<22 | 513<<12 | 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := Compose(tt.parts, epoch)
			if err != nil || id != tt.id {
				t.Fatalf("Compose(%+v) = %d, %v; want %d", tt.parts, id, err, tt.id)
			}
			p, err := Parse(id, epoch)
			if err != nil || !p.Time.Equal(tt.parts.Time) || p.Node != tt.parts.Node || p.Seq != tt.parts.Seq {
				t.Fatalf("Parse(%d) = %+v, %v; want %+v", id, p, err, tt.parts)
			}
		})
	}
}

func TestComposeRejects(t *testing.T) {
	epoch := testEpoch
	tests := []struct {
		name  string
		parts Parts
	}{
		{"before epoch", Parts{Time: epoch.Add(-time.Millisecond)}},
		{"after time range", Parts{Time: epoch.Add((MaxTime + 1) * time.Millisecond)}},
		{"far future", Parts{Time: epoch.AddDate(500, 0, 0)}},
		{"negative node", Parts{Time: epoch, Node: -1}},
		{"node too large", Parts{Time: epoch, Node: MaxNodeID + 1}},
		{"negative seq", Parts{Time: epoch, Seq: -1}},
		{"seq too large", Parts{Time: epoch, Seq: MaxSeq + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := Compose(tt.parts, epoch); !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Compose(%+v) = %d, %v; want ErrInvalidID", tt.parts, id, err)
			}
		})
	}
	if _, err := Parse(-1, epoch); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("Parse(-1) = %v, want ErrInvalidID", err)
	}
}

// FuzzParseCompose checks that every non-negative ID parses into parts that
// compose back into it, and that parts Compose accepts parse back unchanged.
func FuzzParseCompose(f *testing.F) {
	f.Add(int64(0), int64(0), int64(0), int64(0))
	f.Add(int64(1<<63-1), int64(MaxTime), int64(MaxNodeID), int64(MaxSeq))
	f.Add(int64(-5), int64(-1), int64(1024), int64(4096))
	f.Add(int64(1234567<<22|513<<12|42), int64(99), int64(7), int64(3))
	f.Fuzz(func(t *testing.T, id, ms, node, seq int64) {
		epoch := testEpoch
		p, err := Parse(id, epoch)
		if id < 0 {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Parse(%d) = %v, want ErrInvalidID", id, err)
			}
		} else {
			if err != nil {
				t.Fatalf("Parse(%d) = %v", id, err)
			}
			back, err := Compose(p, epoch)
			if err != nil || back != id {
				t.Fatalf("Compose(Parse(%d)) = %d, %v", id, back, err)
			}
		}

		ms %= 1 << 45 // wider than the time field, narrow enough not to overflow a Duration
		parts := Parts{Time: epoch.Add(time.Duration(ms) * time.Millisecond), Node: node, Seq: seq}
		composed, err := Compose(parts, epoch)
		valid := ms >= 0 && ms <= MaxTime && node >= 0 && node <= MaxNodeID && seq >= 0 && seq <= MaxSeq
		if !valid {
			if !errors.Is(err, ErrInvalidID) {
				t.Fatalf("Compose(%+v) = %d, %v; want ErrInvalidID", parts, composed, err)
			}
			return
		}
		if err != nil || composed < 0 {
			t.Fatalf("Compose(%+v) = %d, %v", parts, composed, err)
		}
		got, err := Parse(composed, epoch)
		if err != nil || !got.Time.Equal(parts.Time) || got.Node != node || got.Seq != seq {
			t.Fatalf("Parse(Compose(%+v)) = %+v, %v", parts, got, err)
		}
	})
}
