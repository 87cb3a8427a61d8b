package tc

import (
	"sync"
	"time"
)

// processes tracks the processes attached to this replica, by the client
// ID in their resource manager's Hello, and the transactions each began
// through this replica, so that the transactions of a process that died
// are rolled back without waiting for their timeout. It decides nothing
// by itself: the time comes in, the transactions to roll back come out.
//
// A process counts as gone once its last Attach stream here has ended and
// none came back within the grace the caller gives. That is a guess, made
// safe by what follows from it: only a transaction still in BEGIN is
// rolled back, as its timeout would, so a process that was alive after
// all finds its transaction rolled back when it commits, and answers so.
type processes struct {
	mu sync.Mutex
	// streams counts the live Attach streams of each client ID.
	streams map[string]int
	// gone holds when the last stream ended, for each client ID without a
	// live stream that has transactions in began.
	gone map[string]time.Time
	// began holds, per client ID, the XIDs begun through this replica and
	// not ended here, with their deadlines.
	began map[string]map[string]time.Time
	// by maps each XID of began to its client ID.
	by map[string]string
}

// orphan is a transaction whose process is gone.
type orphan struct {
	xid, clientID string
}

func newProcesses() *processes {
	return &processes{
		streams: make(map[string]int),
		gone:    make(map[string]time.Time),
		began:   make(map[string]map[string]time.Time),
		by:      make(map[string]string),
	}
}

// attached records a new Attach stream of clientID.
func (p *processes) attached(clientID string) {
	if clientID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.streams[clientID]++
	delete(p.gone, clientID)
}

// detached records, at now, the end of a stream that attached recorded.
func (p *processes) detached(clientID string, now time.Time) {
	if clientID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streams[clientID]--; p.streams[clientID] > 0 {
		return
	}
	delete(p.streams, clientID)
	if len(p.began[clientID]) > 0 {
		p.gone[clientID] = now
	}
}

// begun records xid, begun by clientID, with its deadline (BeginTime plus
// Timeout). It records nothing when clientID has no live stream here:
// nothing would then tell that the process died.
func (p *processes) begun(clientID, xid string, deadline time.Time) {
	if clientID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.streams[clientID] == 0 {
		return
	}
	txs := p.began[clientID]
	if txs == nil {
		txs = make(map[string]time.Time)
		p.began[clientID] = txs
	}
	txs[xid] = deadline
	p.by[xid] = clientID
}

// ended forgets xid: its TM is ending it, so its process is alive.
func (p *processes) ended(xid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(xid)
}

func (p *processes) forgetLocked(xid string) {
	clientID, ok := p.by[xid]
	if !ok {
		return
	}
	delete(p.by, xid)
	delete(p.began[clientID], xid)
	if len(p.began[clientID]) == 0 {
		delete(p.began, clientID)
		delete(p.gone, clientID)
	}
}

// orphans returns the transactions of the processes whose last stream
// ended at least grace before now, and forgets them. It also forgets the
// transactions past their deadline, which the timeout sweep rolls back,
// so that those ended through another replica do not pile up here.
func (p *processes) orphans(now time.Time, grace time.Duration) []orphan {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []orphan
	for clientID, txs := range p.began {
		gone, isGone := p.gone[clientID]
		for xid, deadline := range txs {
			switch {
			case isGone && !now.Before(gone.Add(grace)):
				out = append(out, orphan{xid: xid, clientID: clientID})
			case now.After(deadline):
			default:
				continue
			}
			p.forgetLocked(xid)
		}
	}
	return out
}
