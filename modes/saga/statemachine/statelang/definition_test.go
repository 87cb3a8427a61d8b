package statelang_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	sm "github.com/gtx-io/gtx/modes/saga/statemachine/statelang"
)

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		def  string
		want []string // every message must appear
	}{
		{"empty", ``, []string{"empty document"}},
		{"not an object", `[1]`, []string{"invalid definition"}},
		{"unknown field", `{"Name":"x","StartState":"A","States":{"A":{"Type":"Succeed","Nxt":"B"}}}`, []string{`unknown field "Nxt"`}},
		{"field name in the wrong case", "Name: x\nStartState: A\nStates:\n  A: {Type: Succeed, comment: hi}\n", []string{`States: A: unknown field "comment" (names are case-sensitive: "Comment")`}},
		{"unknown field in a list item", `{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","ServiceName":"s","Retry":[{"Interval":1}]}}}`, []string{`States: A: Retry[0]: unknown field "Interval"`}},
		{"trailing data", `{"Name":"x","StartState":"A","States":{"A":{"Type":"Succeed"}}} {}`, []string{"after top-level value"}},
		{"bad yaml", "Name: [x", []string{"yaml:"}},
		{"missing name and start", `{"States":{"A":{"Type":"Succeed"}}}`, []string{`field Name: is empty`, `field StartState: is empty`}},
		{"start state missing", `{"Name":"x","StartState":"Z","States":{"A":{"Type":"Succeed"}}}`, []string{`definition "x": field StartState: names state "Z", which does not exist`}},
		{"bad strategy", `{"Name":"x","StartState":"A","RecoverStrategy":"Later","States":{"A":{"Type":"Succeed"}}}`, []string{`field RecoverStrategy: is "Later"`}},
		{"unknown type", `{"Name":"x","StartState":"A","States":{"A":{"Type":"Task"}}}`, []string{`state "A": field Type: is "Task"`}},
		{"task without service", `{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","Next":"B"},"B":{"Type":"Succeed"}}}`, []string{`state "A": field ServiceName: is empty`}},
		{"next to nowhere", `{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","ServiceName":"s","Next":"Nope"}}}`, []string{`state "A": field Next: names state "Nope", which does not exist`}},
		{"compensate state not for compensation", `{"Name":"x","StartState":"A","States":{
			"A":{"Type":"ServiceTask","ServiceName":"s","CompensateState":"B","Next":"B"},"B":{"Type":"Succeed"}}}`,
			[]string{`state "A": field CompensateState: names state "B", which is not a ServiceTask with IsForCompensation: true`}},
		{"next into a compensation state", `{"Name":"x","StartState":"A","States":{
			"A":{"Type":"ServiceTask","ServiceName":"s","Next":"U"},"U":{"Type":"ServiceTask","ServiceName":"s","IsForCompensation":true}}}`,
			[]string{`state "A": field Next: names compensation state "U"`}},
		{"compensation state with next", `{"Name":"x","StartState":"A","States":{
			"A":{"Type":"ServiceTask","ServiceName":"s","CompensateState":"U"},"U":{"Type":"ServiceTask","ServiceName":"s","IsForCompensation":true,"Next":"A"}}}`,
			[]string{`state "U": field Next: does not apply to a ServiceTask state`}},
		{"bad retry", `{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","ServiceName":"s",
			"Retry":[{"IntervalSeconds":-1,"MaxAttempts":-2,"BackoffRate":0.5}]}}}`,
			[]string{`state "A": field Retry[0].IntervalSeconds: is -1`, `field Retry[0].MaxAttempts: is -2`, `field Retry[0].BackoffRate: is 0.5`}},
		{"bad catch", `{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","ServiceName":"s","Catch":[{"Exceptions":[],"Next":""}]}}}`,
			[]string{`state "A": field Catch[0].Exceptions: is empty`, `field Catch[0].Next: is empty`}},
		{"bad paths", `{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","ServiceName":"s","Input":{"a":"$.x["},"Output":{"v":"result"}}}}`,
			[]string{`state "A": field Input: "$.x[": '[' without ']'`, `field Output.v: a path is "$"`}},
		{"choice problems", `{"Name":"x","StartState":"C","States":{"C":{"Type":"Choice","Choices":[{"Expression":"$.a >","Next":"D"},{"Expression":"$.a == 1"}],"Default":"Q"},"D":{"Type":"Succeed"}}}`,
			[]string{`state "C": field Choices[0].Expression: "$.a >": missing operand`, `field Choices[1].Next: is empty`, `field Default: names state "Q"`}},
		{"choice without choices", `{"Name":"x","StartState":"C","States":{"C":{"Type":"Choice"}}}`, []string{`state "C": field Choices: is empty`}},
		{"fields a type does not take", `{"Name":"x","StartState":"S","States":{"S":{"Type":"Succeed","Next":"F","ServiceName":"s"},"F":{"Type":"Fail","Choices":[]}}}`,
			[]string{`state "S": field Next: does not apply to a Succeed state`, `state "S": field ServiceName: does not apply`, `state "F": field Choices: does not apply to a Fail state`}},
		{"names too long", `{"Name":"` + strings.Repeat("n", 129) + `","StartState":"A","States":{"A":{"Type":"Succeed"},"` + strings.Repeat("s", 129) + `":{"Type":"Succeed"}}}`,
			[]string{`field Name: is 129 bytes long; at most 128 allowed`, `field States: the state's name is 129 bytes long`}},
		{"sub state machine input not an object", `{"Name":"x","StartState":"S","States":{"S":{"Type":"SubStateMachine","StateMachineName":"c","Input":"$.a"}}}`, []string{`state "S": field Input: must be an object`}},
		{"sub state machine without name", `{"Name":"x","StartState":"S","States":{"S":{"Type":"SubStateMachine"}}}`, []string{`state "S": field StateMachineName: is empty`}},
		{"yaml too", "Name: y\nStartState: A\nStates:\n  A: {Type: ServiceTask, TimeoutSeconds: -1}\n", []string{`definition "y": state "A": field ServiceName: is empty`, `field TimeoutSeconds: is -1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := sm.Parse([]byte(tt.def))
			if err == nil || d != nil {
				t.Fatalf("Parse accepted it: %+v", d)
			}
			if !errors.Is(err, sm.ErrInvalidDefinition) {
				t.Fatalf("error %v does not match ErrInvalidDefinition", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestValidationErrorFields(t *testing.T) {
	_, err := sm.Parse([]byte(`{"Name":"x","StartState":"A","States":{"A":{"Type":"ServiceTask","ServiceName":"s","Next":"Nope"}}}`))
	var ve *sm.ValidationError
	if !errors.As(err, &ve) || ve.Definition != "x" || ve.State != "A" || ve.Field != "Next" {
		t.Fatalf("error %#v, want a ValidationError for x/A/Next", ve)
	}
}

const sampleYAML = `
Name: order
StartState: Reserve
RecoverStrategy: Forward
States:
  Reserve:
    Type: ServiceTask
    ServiceName: inventory
    ServiceMethod: reserve
    CompensateState: Release
    Input: {sku: $.sku, items: ['$.items[0]', 2]}
    Output: {reservation: $.id}
    Retry: [{Exceptions: [Busy], IntervalSeconds: 0.5, MaxAttempts: 3, BackoffRate: 2}]
    Catch: [{Exceptions: ["*"], Next: Undo}]
    Next: Check
  Release: {Type: ServiceTask, ServiceName: inventory, ServiceMethod: release, IsForCompensation: true}
  Check:
    Type: Choice
    Choices: [{Expression: '$.qty > 10 && $.sku != "x" || !$.paid', Next: Sub}]
    Default: Done
  Sub: {Type: SubStateMachine, StateMachineName: child, Next: Done}
  Undo: {Type: CompensationTrigger, Next: Failed}
  Failed: {Type: Fail, ErrorCode: E, Message: failed}
  Done: {Type: Succeed}
`

func TestParseAcceptsBothFormats(t *testing.T) {
	y, err := sm.Parse([]byte(sampleYAML))
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(y)
	if err != nil {
		t.Fatal(err)
	}
	d, err := sm.Parse(j)
	if err != nil {
		t.Fatalf("the JSON form of a parsed definition: %v", err)
	}
	if !reflect.DeepEqual(d, y) {
		t.Fatalf("JSON %+v differs from YAML %+v", d, y)
	}
	if y.States["Reserve"].Retry[0].BackoffRate != 2 || y.States["Check"].Choices[0].Next != "Sub" {
		t.Fatalf("fields lost: %+v", y.States)
	}
}

func TestExpressions(t *testing.T) {
	ctx := map[string]any{"qty": 12.0, "sku": "book", "paid": true, "items": []any{map[string]any{"n": 1.0}}, "none": nil}
	tests := []struct {
		expr string
		want bool
	}{
		{"$.qty > 10", true},
		{"$.qty <= 10", false},
		{`$.sku == "book"`, true},
		{`$.sku != "book" || $.paid`, true},
		{`$.sku == "book" && !$.paid`, false},
		{"$.items[0].n == 1", true},
		{"$.items[3].n == 1", false},
		{"$.missing", false},
		{"!$.missing", true},
		{"$.none == null", true},
		{`$.sku < 5`, false},
		{`"a" < "b"`, true},
	}
	for _, tt := range tests {
		e, err := sm.ParseExpression(tt.expr)
		if err != nil {
			t.Fatalf("%q: %v", tt.expr, err)
		}
		if got := e.Eval(ctx); got != tt.want {
			t.Errorf("%q = %v, want %v", tt.expr, got, tt.want)
		}
	}
	for _, bad := range []string{"", "$.a >", "!$.a == 1", `"open`, "$..a", "$.a[x]", "{} == 1", "nope"} {
		if _, err := sm.ParseExpression(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParse: Parse never panics, and what it accepts validates and
// survives a JSON round trip unchanged in meaning.
func FuzzParse(f *testing.F) {
	for _, s := range []string{sampleYAML, `{}`, `Name: x`, `{"Name":"x","StartState":"C","States":{"C":{"Type":"Choice","Choices":[{"Expression":"$.a[0] >= 1 || !$.b && $.c == \"x\"","Next":"C"}]}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := sm.Parse(data)
		if err != nil {
			if !errors.Is(err, sm.ErrInvalidDefinition) {
				t.Fatalf("error %v does not match ErrInvalidDefinition", err)
			}
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("Parse accepted a definition that does not validate: %v", err)
		}
		j, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("marshal an accepted definition: %v", err)
		}
		again, err := sm.Parse(j)
		if err != nil {
			t.Fatalf("the JSON form of an accepted definition is refused: %v\n%s", err, j)
		}
		if j2, err := json.Marshal(again); err != nil || string(j2) != string(j) {
			t.Fatalf("the JSON round trip changed the definition:\n%s\n%s", j, j2)
		}
	})
}
