package idgen

import (
	"fmt"
	"time"
)

// The bit layout of an ID, from the most significant bit:
//
//	 1 bit   sign, always 0, so IDs are positive int64 values
//	41 bits  milliseconds since the epoch (about 69 years)
//	10 bits  node ID, 0 to 1023
//	12 bits  sequence within the millisecond, 0 to 4095
//
// IDs from one generator increase strictly; IDs from different nodes are
// ordered by time to the millisecond.
const (
	// TimeBits is the width of the millisecond field.
	TimeBits = 41
	// NodeBits is the width of the node field.
	NodeBits = 10
	// SeqBits is the width of the sequence field.
	SeqBits = 12

	// MaxNodeID is the largest node ID.
	MaxNodeID = 1<<NodeBits - 1
	// MaxSeq is the largest sequence number within one millisecond.
	MaxSeq = 1<<SeqBits - 1
	// MaxTime is the largest millisecond offset from the epoch.
	MaxTime = 1<<TimeBits - 1

	nodeShift = SeqBits
	timeShift = SeqBits + NodeBits
)

// Parts are the fields of an ID.
type Parts struct {
	// Time is the millisecond the ID was made in (or borrowed, see the
	// package documentation), in the epoch's location.
	Time time.Time
	// Node is the node ID, 0 to MaxNodeID.
	Node int64
	// Seq is the sequence number within the millisecond, 0 to MaxSeq.
	Seq int64
}

// Parse splits id into its fields, reading the time relative to epoch. It
// fails with ErrInvalidID only for a negative id; any other int64 decodes.
func Parse(id int64, epoch time.Time) (Parts, error) {
	if id < 0 {
		return Parts{}, fmt.Errorf("%w: %d is negative, ids are never negative", ErrInvalidID, id)
	}
	ms := id >> timeShift
	return Parts{
		Time: epoch.Add(time.Duration(ms) * time.Millisecond),
		Node: id >> nodeShift & MaxNodeID,
		Seq:  id & MaxSeq,
	}, nil
}

// Compose builds the ID with the given fields, reading p.Time relative to
// epoch and truncating it to the millisecond. It fails with ErrInvalidID when
// a field does not fit the layout.
func Compose(p Parts, epoch time.Time) (int64, error) {
	d := p.Time.Sub(epoch)
	if d < 0 {
		return 0, fmt.Errorf("%w: time %s is before the epoch %s", ErrInvalidID, p.Time, epoch)
	}
	ms := int64(d / time.Millisecond)
	if ms > MaxTime {
		return 0, fmt.Errorf("%w: time %s is more than %d ms after the epoch %s", ErrInvalidID, p.Time, int64(MaxTime), epoch)
	}
	if p.Node < 0 || p.Node > MaxNodeID {
		return 0, fmt.Errorf("%w: node %d is outside 0..%d", ErrInvalidID, p.Node, MaxNodeID)
	}
	if p.Seq < 0 || p.Seq > MaxSeq {
		return 0, fmt.Errorf("%w: sequence %d is outside 0..%d", ErrInvalidID, p.Seq, MaxSeq)
	}
	return ms<<timeShift | p.Node<<nodeShift | p.Seq, nil
}
