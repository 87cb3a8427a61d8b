package statemachine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	sm "github.com/gtx-io/gtx/modes/saga/statemachine"
)

const benchSteps = 10

// benchDefinition chains benchSteps no-op Go tasks, each with a
// compensation.
func benchDefinition() string {
	var states []string
	for i := 1; i <= benchSteps; i++ {
		next := fmt.Sprintf("S%d", i+1)
		if i == benchSteps {
			next = "Done"
		}
		states = append(states,
			fmt.Sprintf(`"S%d": {"Type": "ServiceTask", "ServiceName": "noop", "ServiceMethod": "do", "CompensateState": "U%d", "Output": {"last": "$.n"}, "Next": %q}`, i, i, next),
			fmt.Sprintf(`"U%d": {"Type": "ServiceTask", "ServiceName": "noop", "ServiceMethod": "undo", "IsForCompensation": true}`, i))
	}
	states = append(states, `"Done": {"Type": "Succeed"}`)
	return `{"Name": "bench", "StartState": "S1", "States": {` + strings.Join(states, ",") + `}}`
}

// BenchmarkEngineStep runs instances of ten no-op tasks, one after the
// other, and reports the engine's cost per step: storing the execution
// before the call, its outcome after, and the transition.
func BenchmarkEngineStep(b *testing.B) {
	def := mustParse(b, benchDefinition())
	noop := sm.ServiceFunc(func(context.Context, sm.Task) (json.RawMessage, error) { return json.RawMessage(`{"n":1}`), nil })
	for kind, open := range databases(b) {
		b.Run(kind, func(b *testing.B) {
			e := newEngine(b, open(b), nil)
			mustOK(b, e.Register(def))
			mustOK(b, e.RegisterService("noop", noop))
			ctx := context.Background()
			mustOK(b, e.Start(ctx))
			b.ResetTimer()
			for b.Loop() {
				if _, err := e.Run(ctx, "bench", nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSteps), "ns/step")
		})
	}
}

// BenchmarkBaselineInsert is the floor a durable engine cannot go below on
// the same database: one autocommitted INSERT per step.
func BenchmarkBaselineInsert(b *testing.B) {
	for kind, open := range databases(b) {
		b.Run(kind, func(b *testing.B) {
			db := open(b)
			mustOK(b, db.Exec("CREATE TABLE bench_baseline (id BIGINT PRIMARY KEY, state VARCHAR(64) NOT NULL, output TEXT NOT NULL)").Error)
			b.Cleanup(func() { db.Exec("DROP TABLE bench_baseline") })
			var id int64
			b.ResetTimer()
			for b.Loop() {
				for range benchSteps {
					id++
					if err := db.Exec("INSERT INTO bench_baseline (id, state, output) VALUES (?, ?, ?)", id, "S", `{"n":1}`).Error; err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSteps), "ns/step")
		})
	}
}
