package statemachine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"gorm.io/gorm"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
	"github.com/gtx-io/gtx/modes/saga/statemachine/statelang"
)

// runner drives one instance (and, through SubStateMachine states, its
// children).
type runner struct {
	e    *Engine
	def  *Definition
	inst *instanceRow
	vars map[string]any
	// pending is a finished execution whose outcome is stored with the
	// next save of the instance.
	pending *execRow
	// active is the stored execution of the current state, found when the
	// instance was loaded.
	active *execRow
}

// save stores the instance, the pending execution's outcome and, when
// extra is not nil, what extra writes, in one transaction.
func (r *runner) save(ctx context.Context, extra func(tx *gorm.DB) error) error {
	err := r.e.cfg.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if x := r.pending; x != nil {
			if _, err := finishExecTx(tx, x.Key, x.Attempts, x.Output, "", ""); err != nil {
				return err
			}
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return r.e.store.saveInstance(ctx, tx, r.inst)
	})
	if err != nil {
		return err
	}
	r.pending = nil
	return nil
}

// drive runs a root instance to its end and reports the outcome.
func (e *Engine) drive(ctx context.Context, inst *instanceRow, recovering bool) error {
	if inst.Status == StatusRunning || inst.Status == StatusCompensating {
		if err := e.execute(ctx, inst, recovering); err != nil {
			return err
		}
	}
	return e.report(ctx, inst)
}

// execute runs inst until it succeeds or fails. It returns errStopped when
// the engine closes first.
func (e *Engine) execute(ctx context.Context, inst *instanceRow, recovering bool) error {
	def, err := e.definition(inst.Machine)
	if err != nil {
		return err
	}
	r := &runner{e: e, def: def, inst: inst}
	if err := json.Unmarshal([]byte(inst.Context), &r.vars); err != nil {
		return fmt.Errorf("statemachine: instance %s: stored context: %w", inst.ID, err)
	}
	if r.vars == nil {
		r.vars = map[string]any{}
	}
	if inst.Status == StatusCompensating {
		return r.compensateAndFail(ctx, inst.ErrorCode, inst.ErrorMessage)
	}
	latest, err := e.store.latestForward(ctx, inst.ID)
	if err != nil {
		return r.stopOr(ctx, err)
	}
	if latest != nil && latest.Seq >= inst.NextSeq {
		r.active, inst.NextSeq = latest, latest.Seq+1
	}
	if recovering && strategy(def) == Compensate {
		e.log.Info("compensating an instance interrupted by a restart", "instance", inst.ID, "state", inst.CurrentState)
		return r.compensateAndFail(ctx, "Recovered", fmt.Sprintf("the engine restarted while the instance was in state %q; RecoverStrategy is Compensate", inst.CurrentState))
	}
	return r.forward(ctx)
}

func strategy(d *Definition) RecoverStrategy {
	if d.RecoverStrategy == "" {
		return Compensate
	}
	return d.RecoverStrategy
}

// forward runs states from the current one.
func (r *runner) forward(ctx context.Context) error {
	for r.inst.Status == StatusRunning {
		if ctx.Err() != nil {
			return errStopped
		}
		name := r.inst.CurrentState
		st := r.def.States[name]
		if st == nil {
			return r.compensateAndFail(ctx, CodeError, fmt.Sprintf("state %q is not in definition %q", name, r.def.Name))
		}
		switch st.Type {
		case Succeed:
			return r.finish(ctx, StatusSucceeded, "", "")
		case Fail:
			return r.finish(ctx, StatusFailed, st.ErrorCode, st.Message)
		case Choice:
			next := st.Default
			for _, c := range st.Choices {
				if e, err := statelang.ParseExpression(c.Expression); err == nil && e.Eval(r.vars) {
					next = c.Next
					break
				}
			}
			if next == "" {
				return r.compensateAndFail(ctx, CodeNoChoice, fmt.Sprintf("no choice of state %q holds and it has no Default", name))
			}
			if err := r.transition(ctx, next); err != nil {
				return err
			}
		case CompensationTrigger:
			if err := r.compensate(ctx); err != nil {
				return err
			}
			if st.Next == "" {
				return r.finish(ctx, StatusFailed, "Compensated", fmt.Sprintf("compensated by state %q", name))
			}
			if err := r.transition(ctx, st.Next); err != nil {
				return err
			}
		case ServiceTask, SubStateMachine:
			x, err := r.execution(ctx, st)
			if err != nil {
				return err
			}
			if st.Type == ServiceTask {
				err = r.runTask(ctx, st, x, false)
			} else {
				err = r.runChild(ctx, st, x)
			}
			if err != nil {
				return err
			}
			if err := r.after(ctx, st, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// execution returns the execution of the current state: the one stored
// (after a restart) or a new one.
func (r *runner) execution(ctx context.Context, st *State) (*execRow, error) {
	if x := r.active; x != nil {
		r.active = nil
		return x, nil
	}
	seq := r.inst.NextSeq
	x := &execRow{InstanceID: r.inst.ID, Seq: seq, Name: r.inst.CurrentState, Status: execRunning, Key: r.key(r.inst.CurrentState, seq), Attempts: 1}
	if st.Type == ServiceTask {
		in, err := r.input(st)
		if err != nil {
			x.Status, x.ErrorCode, x.ErrorMessage = execFailed, CodeInput, err.Error()
		}
		x.Input = string(in)
	} else {
		x.ChildID = r.inst.ID + "." + fmt.Sprint(seq)
	}
	r.inst.NextSeq = seq + 1
	if err := r.e.store.startExec(ctx, x); err != nil {
		return nil, r.stopOr(ctx, fmt.Errorf("statemachine: instance %s: store execution of %q: %w", r.inst.ID, x.Name, err))
	}
	return x, nil
}

// key is the idempotency key of an execution of state.
func (r *runner) key(state string, seq int) string {
	return fmt.Sprintf("%s/%s/%s#%d", r.inst.XID, r.inst.ID, state, seq)
}

func (r *runner) input(st *State) (json.RawMessage, error) {
	if st.Input == nil {
		return json.Marshal(r.vars)
	}
	v, err := statelang.Resolve(st.Input, r.vars)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// after applies the outcome of a finished execution x of st.
func (r *runner) after(ctx context.Context, st *State, x *execRow) error {
	if x.Status == execSucceeded {
		if err := r.output(st, x); err != nil {
			return r.compensateAndFail(ctx, CodeInput, fmt.Sprintf("state %q: output: %v", x.Name, err))
		}
		if st.Next == "" {
			return r.finish(ctx, StatusSucceeded, "", "")
		}
		return r.transition(ctx, st.Next)
	}
	for _, c := range st.Catch {
		if matches(c.Exceptions, x.ErrorCode) {
			r.vars["Error"] = map[string]any{"code": x.ErrorCode, "message": x.ErrorMessage, "state": x.Name}
			return r.transition(ctx, c.Next)
		}
	}
	return r.compensateAndFail(ctx, x.ErrorCode, fmt.Sprintf("state %q: %s", x.Name, x.ErrorMessage))
}

func (r *runner) output(st *State, x *execRow) error {
	if len(st.Output) == 0 {
		return nil
	}
	var result any
	if x.Output != "" {
		if err := json.Unmarshal([]byte(x.Output), &result); err != nil {
			return fmt.Errorf("result is not JSON: %w", err)
		}
	}
	for k, p := range st.Output {
		pp, err := statelang.ParsePath(p)
		if err != nil {
			return err
		}
		r.vars[k] = pp.Get(result)
	}
	return nil
}

func matches(codes []string, code string) bool {
	return len(codes) == 0 || slices.Contains(codes, "*") || slices.Contains(codes, code)
}

// transition moves the instance to next, storing its context.
func (r *runner) transition(ctx context.Context, next string) error {
	vars, err := json.Marshal(r.vars)
	if err != nil {
		return fmt.Errorf("statemachine: instance %s: context is not JSON: %w", r.inst.ID, err)
	}
	r.inst.CurrentState, r.inst.Context = next, string(vars)
	if err := r.save(ctx, nil); err != nil {
		return r.stopOr(ctx, fmt.Errorf("statemachine: instance %s: store transition to %q: %w", r.inst.ID, next, err))
	}
	return nil
}

// stopOr returns errStopped when the engine is closing, else err.
func (r *runner) stopOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errStopped
	}
	return err
}

// runTask runs x, an execution of the ServiceTask st, until it succeeds or
// fails for good: attempts, with st.Retry (forward) or the engine's
// compensation backoff without end (compensation).
func (r *runner) runTask(ctx context.Context, st *State, x *execRow, compensation bool) error {
	for {
		if x.Status == execRunning {
			if err := r.attempt(ctx, st, x); err != nil {
				return err
			}
			continue
		}
		if x.Status == execSucceeded {
			return nil
		}
		wait, again := r.retryWait(st, x, compensation)
		if !again {
			return nil
		}
		r.e.log.Debug("retrying", "instance", r.inst.ID, "state", x.Name, "attempt", x.Attempts, "code", x.ErrorCode, "in", wait)
		if err := sleep(ctx, wait); err != nil {
			return errStopped
		}
		if err := r.e.store.retryExec(ctx, x.Key, x.Attempts); err != nil {
			return r.stopOr(ctx, err)
		}
		x.Status, x.Attempts, x.ErrorCode, x.ErrorMessage = execRunning, x.Attempts+1, "", ""
	}
}

// retryWait says whether the failed execution x runs again, and after how
// long.
func (r *runner) retryWait(st *State, x *execRow, compensation bool) (time.Duration, bool) {
	if compensation {
		d := r.e.cfg.CompensationRetryInitial
		for i := 1; i < x.Attempts && d < r.e.cfg.CompensationRetryMax; i++ {
			d *= 2
		}
		return min(d, r.e.cfg.CompensationRetryMax), true
	}
	if x.ErrorCode == CodeInput {
		return 0, false
	}
	for _, rule := range st.Retry {
		if !matches(rule.Exceptions, x.ErrorCode) {
			continue
		}
		maxRetries := rule.MaxAttempts
		if maxRetries == 0 {
			maxRetries = 3
		}
		retries := x.Attempts - 1
		if retries >= maxRetries {
			return 0, false
		}
		rate := rule.BackoffRate
		if rate == 0 {
			rate = 1.5
		}
		return time.Duration(rule.IntervalSeconds * math.Pow(rate, float64(retries)) * float64(time.Second)), true
	}
	return 0, false
}

// attempt runs the current attempt of x and records its outcome in x.
func (r *runner) attempt(ctx context.Context, st *State, x *execRow) error {
	task := Task{XID: r.inst.XID, InstanceID: r.inst.ID, Machine: r.def.Name, State: x.Name, Method: st.ServiceMethod,
		Key: x.Key, Compensation: x.Compensation, Attempt: x.Attempts, Input: json.RawMessage(x.Input)}
	if x.Compensation {
		task.ForwardKey = x.ForwardKey
	}
	r.e.mu.Lock()
	svc, async := r.e.services[st.ServiceName], r.e.async[st.ServiceName]
	r.e.mu.Unlock()
	var (
		out []byte
		err error
	)
	switch {
	case async != nil:
		return r.await(ctx, st, x, task, async)
	case svc != nil:
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if st.TimeoutSeconds > 0 {
			cctx, cancel = context.WithTimeout(ctx, time.Duration(st.TimeoutSeconds*float64(time.Second)))
		}
		out, err = svc.Call(cctx, task)
		cancel()
		if ctx.Err() != nil {
			return errStopped
		}
		if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			err = &TaskError{Code: CodeTimeout, Message: fmt.Sprintf("no answer within %vs: %v", st.TimeoutSeconds, err)}
		}
	default:
		err = &TaskError{Code: CodeError, Message: fmt.Sprintf("%v: %q", ErrUnknownService, st.ServiceName)}
	}
	code, msg := "", ""
	if err != nil {
		code, msg = codeOf(err), err.Error()
	} else if len(out) > 0 && !json.Valid(out) {
		code, msg = CodeInput, "the service's result is not JSON"
	}
	if code == "" {
		// A success is stored with what follows from it (the transition,
		// or the compensation mark), in one transaction. A crash before
		// that runs the call again, as any crash during it would.
		x.Status, x.Output = execSucceeded, string(out)
		r.pending = x
		return nil
	}
	if _, ferr := r.e.store.finishExec(ctx, x.Key, x.Attempts, string(out), code, msg); ferr != nil {
		return r.stopOr(ctx, ferr)
	}
	return r.reload(ctx, x)
}

func (r *runner) reload(ctx context.Context, x *execRow) error {
	y, err := r.e.store.exec(ctx, x.Key)
	if err != nil {
		return r.stopOr(ctx, err)
	}
	*x = *y
	return nil
}

// runChild runs the child instance of the SubStateMachine execution x.
func (r *runner) runChild(ctx context.Context, st *State, x *execRow) error {
	if x.Status != execRunning {
		return nil
	}
	child, err := r.e.store.instance(ctx, x.ChildID)
	if errors.Is(err, ErrInstanceNotFound) {
		def, derr := r.e.definition(st.StateMachineName)
		if derr != nil {
			_, ferr := r.e.store.finishExec(ctx, x.Key, x.Attempts, "", CodeSubStateMachineFailed, derr.Error())
			if ferr != nil {
				return r.stopOr(ctx, ferr)
			}
			return r.reload(ctx, x)
		}
		in, ierr := r.input(st)
		if ierr != nil {
			in = []byte("{}")
		}
		child = &instanceRow{ID: x.ChildID, Machine: def.Name, XID: r.inst.XID, ParentID: r.inst.ID, Status: StatusRunning, CurrentState: def.StartState, NextSeq: 1, Context: string(in)}
		if err := r.e.store.createInstance(ctx, child); err != nil {
			return r.stopOr(ctx, err)
		}
	} else if err != nil {
		return r.stopOr(ctx, err)
	}
	if child.Status == StatusRunning || child.Status == StatusCompensating {
		if err := r.e.execute(ctx, child, false); err != nil {
			return err
		}
	}
	code, msg := "", ""
	if child.Status != StatusSucceeded {
		code, msg = CodeSubStateMachineFailed, fmt.Sprintf("child %s (%s) failed: %s: %s", child.ID, child.Machine, child.ErrorCode, child.ErrorMessage)
	}
	if _, err := r.e.store.finishExec(ctx, x.Key, x.Attempts, child.Context, code, msg); err != nil {
		return r.stopOr(ctx, err)
	}
	return r.reload(ctx, x)
}

// finish ends the instance with status.
func (r *runner) finish(ctx context.Context, status, code, msg string) error {
	vars, err := json.Marshal(r.vars)
	if err != nil {
		return fmt.Errorf("statemachine: instance %s: context is not JSON: %w", r.inst.ID, err)
	}
	r.inst.Status, r.inst.ErrorCode, r.inst.ErrorMessage, r.inst.Context = status, code, msg, string(vars)
	// Only a root instance with a coordinator has a status to report.
	r.inst.Reported = r.e.cfg.Coordinator == nil || r.inst.ParentID != ""
	if err := r.save(ctx, nil); err != nil {
		return r.stopOr(ctx, fmt.Errorf("statemachine: instance %s: store its end: %w", r.inst.ID, err))
	}
	return nil
}

// report tells the coordinator the final status of a root instance, with
// backoff until it answers or the engine closes. A coordinator that no
// longer has the transaction in BEGIN (it timed out, or was told already)
// ends the attempts.
func (e *Engine) report(ctx context.Context, inst *instanceRow) error {
	if e.cfg.Coordinator == nil || inst.ParentID != "" || inst.Reported {
		return nil
	}
	want := tcv1.GlobalStatus_COMMITTED
	if inst.Status == StatusFailed {
		want = tcv1.GlobalStatus_ROLLBACKED
	}
	wait := 50 * time.Millisecond
	for {
		_, err := e.cfg.Coordinator.Report(ctx, &tcv1.ReportRequest{Xid: inst.XID, Status: want})
		if err == nil || !retryableRPC(err) {
			if err != nil {
				e.log.Warn("the coordinator refused the final status", "instance", inst.ID, "xid", inst.XID, "status", want.String(), "err", err)
			}
			inst.Reported = true
			return e.store.saveInstance(ctx, e.cfg.DB, inst)
		}
		if sleep(ctx, wait) != nil {
			return errStopped
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryableRPC reports whether a failed coordinator call may succeed later.
func retryableRPC(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}
