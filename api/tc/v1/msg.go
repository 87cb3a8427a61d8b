package tcv1

import "strconv"

// MessageResource is the resource ID of the MSG branches of a two-phase
// message: the coordinator delivers them itself, through its
// tc.Config.Messages, and asks the producer (MessageData.check) about a
// message that was prepared but not submitted in time. MSG branches on any
// other resource (an outbox) go to the resource manager that announced it.
const MessageResource = "gtx.msg"

// MessageID is the ID of the message a MSG branch carries: the same in
// every delivery, so a target deduplicates by it (NATS JetStream through
// its Nats-Msg-Id header).
func MessageID(xid string, branchID int64) string {
	return xid + "-" + strconv.FormatInt(branchID, 10)
}
