package idgen

import "errors"

// ErrInvalidConfig is returned by Config.Validate, LeaseConfig.Validate and the
// constructors for a configuration they cannot work with. The wrapped message
// names the field and the accepted range.
var ErrInvalidConfig = errors.New("idgen: invalid config")

// ErrInvalidID is returned by Parse for a negative ID and by Compose for parts
// that do not fit the bit layout.
var ErrInvalidID = errors.New("idgen: invalid id")

// ErrTimeExhausted is returned by Generator.NextID when the 41-bit time field
// has run out, about 69 years after the epoch. Configure a later Epoch.
var ErrTimeExhausted = errors.New("idgen: time field exhausted, configure a later epoch")

// ErrNoFreeNode is returned by a Leaser (and so by Acquire) when every node ID
// in its range is held by a live lease. Widen the range, lower the number of
// processes, or wait for a lease to expire.
var ErrNoFreeNode = errors.New("idgen: no free node id")

// ErrLeaseLost is returned once a node lease is, or may be, held by someone
// else: the store said the lease is not ours any more, or the lease was not
// renewed before its TTL ran out. A generator built on that lease stops
// handing out IDs for good; acquire a new lease and build a new generator.
var ErrLeaseLost = errors.New("idgen: node lease lost")

// ErrLeaseClosed is returned by a generator whose lease was closed by its
// owner. Build a new generator on a new lease.
var ErrLeaseClosed = errors.New("idgen: node lease closed")

// ErrClockBehind is returned by Generator.NextID when the generator's time
// is further ahead of the clock than MaxBorrow plus MaxWait: the clock
// stepped back, or a leased node's previous holder issued IDs on a clock
// ahead of this one. It is temporary: NextID succeeds again once the clock
// has caught up.
var ErrClockBehind = errors.New("idgen: clock behind the generator's last id")
