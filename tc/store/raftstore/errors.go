package raftstore

import "errors"

var (
	// ErrInvalidInput is returned for a call the store refuses before it
	// changes anything: a negative count or limit, a branch ID a session
	// has already, a command that does not decode. Fix the call.
	ErrInvalidInput = errors.New("raftstore: invalid input")
	// ErrNoLeader is returned when no leader answered within the call's
	// deadline (Config.ApplyTimeout when the context has none): the
	// cluster is electing one, or has lost its quorum. Retry; when it
	// lasts, see docs/operations.md on lost quorum.
	ErrNoLeader = errors.New("raftstore: no leader reachable")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("raftstore: store closed")
	// ErrInvalidConfig is matched by every error Config.Validate returns.
	ErrInvalidConfig = errors.New("raftstore: invalid config")
)
