package tc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tcv1 "github.com/gtx-io/gtx/api/tc/v1"
)

// branchID returns the ID of a new branch of xid. A registration with an
// idempotency key gets an ID derived from the XID and the key, the same on
// every replica, so that a retry finds the branch an earlier attempt
// created (see registered); one without gets a fresh ID.
func (s *Server) branchID(xid, key string) (int64, error) {
	if key == "" {
		id, err := s.cfg.IDs.NextID()
		if err != nil {
			return 0, status.Errorf(codes.Unavailable, "tc: cannot generate a branch id, try another replica: %v", err)
		}
		return id, nil
	}
	return keyedBranchID(xid, key), nil
}

// keyedBranchID is a positive ID from the SHA-256 of xid and key. Two
// distinct keys of one transaction collide with probability 2^-63.
func keyedBranchID(xid, key string) int64 {
	h := sha256.New()
	h.Write([]byte(xid))
	h.Write([]byte{0})
	h.Write([]byte(key))
	id := int64(binary.BigEndian.Uint64(h.Sum(nil)) >> 1)
	if id == 0 {
		id = 1
	}
	return id
}

// registered reports, after a keyed registration failed, whether an
// earlier attempt with the same key created b: then the registration
// answers that branch. A branch with b's ID but another resource or type
// means the key was reused for another registration: AlreadyExists.
func (s *Server) registered(ctx context.Context, req *tcv1.RegisterBranchRequest, b *BranchSession) (bool, error) {
	if req.GetIdempotencyKey() == "" {
		return false, nil
	}
	g, err := s.store.GetGlobal(ctx, b.XID)
	if err != nil {
		return false, nil
	}
	for _, x := range g.Branches {
		if x.BranchID != b.BranchID {
			continue
		}
		if x.ResourceID != b.ResourceID || x.Type != b.Type || x.LockKeys != b.LockKeys {
			return false, status.Errorf(codes.AlreadyExists, "tc: idempotency_key %q of transaction %s was used by another registration (branch %d on %s); choose a new key per registration",
				logValue(req.GetIdempotencyKey()), b.XID, x.BranchID, logValue(x.ResourceID))
		}
		return true, nil
	}
	return false, nil
}
