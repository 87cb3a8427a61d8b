// Package statelang is the state language of gtx's saga state machines:
// the Definition types, Parse for JSON and YAML, validation with errors
// that name the state and the field, and the paths and Choice expressions
// the engine (package modes/saga/statemachine) evaluates.
//
// A definition, in YAML:
//
//	Name: order
//	StartState: Reserve
//	RecoverStrategy: Forward        # or Compensate (the default)
//	States:
//	  Reserve:
//	    Type: ServiceTask
//	    ServiceName: inventory
//	    ServiceMethod: reserve
//	    CompensateState: Release
//	    Input: {sku: $.sku, qty: $.qty}
//	    Output: {reservation: $.id}
//	    Retry: [{Exceptions: [Busy], IntervalSeconds: 0.5, MaxAttempts: 3, BackoffRate: 2}]
//	    Catch: [{Exceptions: [OutOfStock], Next: Undo}]
//	    Next: Check
//	  Release: {Type: ServiceTask, ServiceName: inventory, ServiceMethod: release, IsForCompensation: true}
//	  Check:
//	    Type: Choice
//	    Choices: [{Expression: '$.qty > 10 && $.sku != "digital"', Next: Ship}]
//	    Default: Done
//	  Ship: {Type: SubStateMachine, StateMachineName: shipping, Next: Done}
//	  Undo: {Type: CompensationTrigger, Next: Failed}
//	  Failed: {Type: Fail, ErrorCode: OutOfStock, Message: nothing left}
//	  Done: {Type: Succeed}
//
// Paths are "$" followed by ".name" and "[index]" parts. In Input, every
// string starting with "$" is replaced by the value its path finds in the
// instance's context; in Output, paths read the task's result. A Choice
// expression compares two operands (paths or JSON literals) with ==, !=, <,
// <=, >, >=, or tests one for truth ("$.paid", "!$.paid"), and joins terms
// with && and || (&& binds tighter; no parentheses; string literals must
// not contain "&&" or "||"). Ordering compares two numbers or two strings
// and is false otherwise.
package statelang
