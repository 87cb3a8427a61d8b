package tcv1

// The classes of global and branch statuses, defined once for the
// coordinator, its stores and its clients. Each is a method on the
// generated enum, so a status answers for itself: st.IsCommitting().

// IsFinal reports whether phase 2 never leaves s by itself: COMMITTED,
// ROLLBACKED and TIMEOUT_ROLLBACKED, and COMMIT_FAILED and ROLLBACK_FAILED,
// which wait for an operator's Retry.
func (s GlobalStatus) IsFinal() bool {
	return s.IsDone() || s == GlobalStatus_COMMIT_FAILED || s == GlobalStatus_ROLLBACK_FAILED
}

// IsDone reports whether s is a status a transaction ends in without an
// operator: COMMITTED, ROLLBACKED or TIMEOUT_ROLLBACKED. Only sessions in
// such a status are ever deleted.
func (s GlobalStatus) IsDone() bool {
	switch s {
	case GlobalStatus_COMMITTED, GlobalStatus_ROLLBACKED, GlobalStatus_TIMEOUT_ROLLBACKED:
		return true
	}
	return false
}

// IsCommitting reports whether s is a status in which phase 2 commits:
// COMMITTING, COMMIT_RETRYING or ASYNC_COMMITTING.
func (s GlobalStatus) IsCommitting() bool {
	switch s {
	case GlobalStatus_COMMITTING, GlobalStatus_COMMIT_RETRYING, GlobalStatus_ASYNC_COMMITTING:
		return true
	}
	return false
}

// IsRollingBack reports whether s is a status in which phase 2 rolls back:
// ROLLBACKING, ROLLBACK_RETRYING, TIMEOUT_ROLLBACKING or
// TIMEOUT_ROLLBACK_RETRYING.
func (s GlobalStatus) IsRollingBack() bool {
	return s == GlobalStatus_ROLLBACKING || s == GlobalStatus_ROLLBACK_RETRYING || s.IsTimeoutRollingBack()
}

// IsTimeoutRollingBack reports whether s is a status in which phase 2 rolls
// back a transaction that timed out: TIMEOUT_ROLLBACKING or
// TIMEOUT_ROLLBACK_RETRYING.
func (s GlobalStatus) IsTimeoutRollingBack() bool {
	return s == GlobalStatus_TIMEOUT_ROLLBACKING || s == GlobalStatus_TIMEOUT_ROLLBACK_RETRYING
}

// IsPhase2 reports whether the coordinator still has phase-2 work to do in
// s: it is committing or rolling back.
func (s GlobalStatus) IsPhase2() bool { return s.IsCommitting() || s.IsRollingBack() }

// IsCommitDecided reports whether commit was decided for a transaction in s:
// it is committing, COMMITTED or COMMIT_FAILED.
func (s GlobalStatus) IsCommitDecided() bool {
	return s.IsCommitting() || s == GlobalStatus_COMMITTED || s == GlobalStatus_COMMIT_FAILED
}

// IsRollbackDecided reports whether rollback was decided for a transaction
// in s, by its TM or by its timeout: it is rolling back, ROLLBACKED,
// TIMEOUT_ROLLBACKED or ROLLBACK_FAILED.
func (s GlobalStatus) IsRollbackDecided() bool {
	return s.IsRollingBack() || s == GlobalStatus_ROLLBACKED || s == GlobalStatus_TIMEOUT_ROLLBACKED ||
		s == GlobalStatus_ROLLBACK_FAILED
}

// IsKnown reports whether s is one of the statuses a transaction can be in
// (not GLOBAL_STATUS_UNSPECIFIED nor a number this version does not know).
func (s GlobalStatus) IsKnown() bool {
	return s != GlobalStatus_GLOBAL_STATUS_UNSPECIFIED && GlobalStatus_name[int32(s)] != ""
}

// GlobalStatuses returns every status a transaction can be in, in the order
// of their numbers.
func GlobalStatuses() []GlobalStatus {
	return filterGlobal(GlobalStatus.IsKnown)
}

// Phase2Statuses returns the statuses in which the coordinator still has
// phase-2 work to do (IsPhase2), in the order of their numbers.
func Phase2Statuses() []GlobalStatus { return filterGlobal(GlobalStatus.IsPhase2) }

// DoneStatuses returns the statuses a transaction ends in without an
// operator (IsDone), in the order of their numbers.
func DoneStatuses() []GlobalStatus { return filterGlobal(GlobalStatus.IsDone) }

func filterGlobal(keep func(GlobalStatus) bool) []GlobalStatus {
	var out []GlobalStatus
	for s := GlobalStatus_BEGIN; s <= GlobalStatus_ROLLBACK_FAILED; s++ {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

// IsPending reports whether a branch in s has not reached phase 2 and did
// not fail phase 1: REGISTERED or PHASE1_DONE.
func (s BranchStatus) IsPending() bool {
	return s == BranchStatus_REGISTERED || s == BranchStatus_PHASE1_DONE
}

// Phase2Outcomes returns the branch statuses a resource manager answers to
// a phase-2 action: done, failed but retryable, and failed for good.
// Outcomes of BRANCH_ACTION_UNSPECIFIED are all BRANCH_STATUS_UNSPECIFIED.
func (a BranchAction) Phase2Outcomes() (done, retryable, unretryable BranchStatus) {
	switch a {
	case BranchAction_BRANCH_COMMIT:
		return BranchStatus_PHASE2_COMMITTED, BranchStatus_PHASE2_COMMIT_FAILED_RETRYABLE, BranchStatus_PHASE2_COMMIT_FAILED_UNRETRYABLE
	case BranchAction_BRANCH_ROLLBACK:
		return BranchStatus_PHASE2_ROLLBACKED, BranchStatus_PHASE2_ROLLBACK_FAILED_RETRYABLE, BranchStatus_PHASE2_ROLLBACK_FAILED_UNRETRYABLE
	}
	return 0, 0, 0
}
