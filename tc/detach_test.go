package tc

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProcesses(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const grace = 5 * time.Second
	deadline := at(600)
	type step struct {
		do   func(p *processes)
		now  int    // the orphans call's time, in seconds after t0
		want string // the XIDs it returns, sorted, comma-separated
	}
	attach := func(id string) func(*processes) { return func(p *processes) { p.attached(id) } }
	detach := func(id string, s int) func(*processes) { return func(p *processes) { p.detached(id, at(s)) } }
	begin := func(id, xid string, dl time.Time) func(*processes) {
		return func(p *processes) { p.begun(id, xid, dl) }
	}
	end := func(xid string) func(*processes) { return func(p *processes) { p.ended(xid) } }
	tests := []struct {
		name  string
		steps []step
	}{
		{"gone after the grace", []step{
			{do: attach("a")}, {do: begin("a", "1", deadline)}, {do: begin("a", "2", deadline)},
			{do: detach("a", 10), now: 14},
			{now: 15, want: "1,2"},
			{now: 100},
		}},
		{"back within the grace", []step{
			{do: attach("a")}, {do: begin("a", "1", deadline)},
			{do: detach("a", 10), now: 12},
			{do: attach("a"), now: 20},
			{do: detach("a", 30), now: 34},
			{now: 35, want: "1"},
		}},
		{"one of two streams ends", []step{
			{do: attach("a")}, {do: attach("a")}, {do: begin("a", "1", deadline)},
			{do: detach("a", 10), now: 100},
			{do: detach("a", 200), now: 205, want: "1"},
		}},
		{"ended by its TM", []step{
			{do: attach("a")}, {do: begin("a", "1", deadline)}, {do: begin("a", "2", deadline)},
			{do: end("1")},
			{do: detach("a", 10), now: 15, want: "2"},
		}},
		{"not attached at begin", []step{
			{do: begin("a", "1", deadline)}, {do: attach("a")},
			{do: detach("a", 10), now: 100},
		}},
		{"no client ID", []step{
			{do: attach("")}, {do: begin("", "1", deadline)},
			{do: detach("", 10), now: 100},
		}},
		{"other processes stay", []step{
			{do: attach("a")}, {do: attach("b")}, {do: begin("a", "1", deadline)}, {do: begin("b", "2", deadline)},
			{do: detach("a", 10), now: 15, want: "1"},
			{now: 500},
			{now: 601}, // b's transaction is past its deadline: the timeout's now
		}},
		{"past the deadline, forgotten", []step{
			{do: attach("a")}, {do: begin("a", "1", at(20))},
			{now: 21},
			{do: detach("a", 30), now: 100},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcesses()
			for i, s := range tt.steps {
				if s.do != nil {
					s.do(p)
				}
				var got []string
				for _, o := range p.orphans(at(s.now), grace) {
					got = append(got, o.xid)
				}
				slices.Sort(got)
				if g := strings.Join(got, ","); g != s.want {
					t.Fatalf("step %d: orphans at %ds = %q, want %q", i, s.now, g, s.want)
				}
			}
			if len(p.by) != 0 || len(p.began) != 0 || len(p.gone) != 0 {
				t.Fatalf("left behind: by %v, began %v, gone %v", p.by, p.began, p.gone)
			}
		})
	}
}
