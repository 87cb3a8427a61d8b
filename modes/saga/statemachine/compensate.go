package statemachine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// compensateAndFail compensates the instance and ends it as failed with
// code and msg.
func (r *runner) compensateAndFail(ctx context.Context, code, msg string) error {
	r.inst.Status, r.inst.ErrorCode, r.inst.ErrorMessage = StatusCompensating, code, msg
	if err := r.save(ctx, nil); err != nil {
		return r.stopOr(ctx, fmt.Errorf("statemachine: instance %s: store compensating: %w", r.inst.ID, err))
	}
	if err := r.compensate(ctx); err != nil {
		return err
	}
	return r.finish(ctx, StatusFailed, code, msg)
}

// compensate undoes every forward execution of the instance not undone yet,
// newest first. Each compensation is retried until it succeeds. Executions
// still marked running (the engine stopped during them, and the instance's
// strategy is Compensate) are failed first, so that a late reply to them is
// ignored, and compensated like the rest: a task may have taken effect even
// when it failed, so every execution that ran is compensated.
func (r *runner) compensate(ctx context.Context) error {
	rows, err := r.e.store.forwardExecs(ctx, r.inst.ID)
	if err != nil {
		return r.stopOr(ctx, err)
	}
	for i := range rows {
		x := &rows[i]
		if x.Compensated {
			continue
		}
		if x.Status == execRunning {
			if _, err := r.e.store.finishExec(ctx, x.Key, x.Attempts, "", "Recovered", "interrupted, then compensated"); err != nil {
				return r.stopOr(ctx, err)
			}
			if err := r.reload(ctx, x); err != nil {
				return err
			}
		}
		st := r.def.States[x.Name]
		switch {
		case st == nil:
		case st.Type == SubStateMachine && x.ChildID != "":
			if err := r.compensateChild(ctx, x.ChildID); err != nil {
				return err
			}
		case st.Type == ServiceTask && st.CompensateState != "":
			if err := r.compensateTask(ctx, x, st.CompensateState); err != nil {
				return err
			}
		}
		id := x.ID
		if err := r.save(ctx, func(tx *gorm.DB) error { return markCompensated(tx, id) }); err != nil {
			return r.stopOr(ctx, err)
		}
	}
	return nil
}

// compensateTask runs the compensation state comp for the forward
// execution x until it succeeds.
func (r *runner) compensateTask(ctx context.Context, x *execRow, comp string) error {
	st := r.def.States[comp]
	key := r.key(comp, x.Seq)
	c, err := r.e.store.exec(ctx, key)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		c = &execRow{InstanceID: r.inst.ID, Seq: x.Seq, Name: comp, Compensation: true, Status: execRunning, Key: key, ForwardKey: x.Key, Attempts: 1}
		in, ierr := r.input(st)
		if ierr != nil {
			in = []byte(x.Input)
		}
		c.Input = string(in)
		if err := r.e.store.startExec(ctx, c); err != nil {
			return r.stopOr(ctx, err)
		}
		c, err = r.e.store.exec(ctx, key)
	}
	if err != nil {
		return r.stopOr(ctx, err)
	}
	return r.runTask(ctx, st, c, true)
}

// compensateChild compensates a child instance and ends it as failed.
func (r *runner) compensateChild(ctx context.Context, id string) error {
	child, err := r.e.store.instance(ctx, id)
	if errors.Is(err, ErrInstanceNotFound) {
		return nil
	}
	if err != nil {
		return r.stopOr(ctx, err)
	}
	def, err := r.e.definition(child.Machine)
	if err != nil {
		return err
	}
	cr := &runner{e: r.e, def: def, inst: child}
	if err := json.Unmarshal([]byte(child.Context), &cr.vars); err != nil || cr.vars == nil {
		cr.vars = map[string]any{}
	}
	if child.Status == StatusSucceeded || child.Status == StatusRunning {
		return cr.compensateAndFail(ctx, "ParentCompensated", "compensated with its parent "+r.inst.ID)
	}
	return cr.compensate(ctx)
}
