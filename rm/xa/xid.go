package xa

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/gtx-io/gtx"
)

// FormatID is the formatID of the MySQL XA identifiers gtx makes ("gtxA"),
// and FormatIDThreePhase that of branches of three-phase transactions
// ("gtx3"); XA RECOVER rows with another formatID are not gtx's.
const (
	FormatID           = 0x67747841
	FormatIDThreePhase = 0x67747833
)

// threePhaseData is the application data an XA branch of a three-phase
// transaction registers with, so that phase 2 names it the same way.
var threePhaseData = []byte("xa:3pc")

// mysqlMaxGtrid is MySQL's bound on gtrid, in bytes.
const mysqlMaxGtrid = 64

// branchXID names one XA branch: the global XID, the branch ID and the tag
// of the resource it belongs to.
type branchXID struct {
	xid      string
	branchID int64
	tag      string
	// threePhase marks a branch of a three-phase transaction
	// (gtx.WithThreePhase): precommitted once prepared.
	threePhase bool
}

// resourceTag returns the tag of a resource ID: 8 hex digits of its
// SHA-256.
func resourceTag(resourceID string) string {
	sum := sha256.Sum256([]byte(resourceID))
	return hex.EncodeToString(sum[:4])
}

func newBranchXID(xid string, branchID int64, resourceID string, threePhase bool) (branchXID, error) {
	if err := gtx.ValidateXID(xid); err != nil {
		return branchXID{}, err
	}
	if branchID <= 0 {
		return branchXID{}, fmt.Errorf("xa: branch ID %d of %s is not positive", branchID, xid)
	}
	return branchXID{xid: xid, branchID: branchID, tag: resourceTag(resourceID), threePhase: threePhase}, nil
}

func (b branchXID) bqual() string { return b.tag + ":" + strconv.FormatInt(b.branchID, 10) }

// mysql returns the identifier as XA statements take it:
// 'gtrid','bqual',formatID. The XID holds only [0-9A-Za-z._:-]
// (gtx.ValidateXID), so it needs no escaping.
func (b branchXID) mysql() string {
	f := FormatID
	if b.threePhase {
		f = FormatIDThreePhase
	}
	return "'" + b.xid + "','" + b.bqual() + "'," + strconv.Itoa(f)
}

// gid returns the PostgreSQL transaction identifier: "gtx:" or, for a
// three-phase branch, "gtx3:", then "<tag>:<branch ID>:<XID>".
func (b branchXID) gid() string {
	if b.threePhase {
		return "gtx3:" + b.bqual() + ":" + b.xid
	}
	return "gtx:" + b.bqual() + ":" + b.xid
}

func (b branchXID) String() string { return b.xid + "/" + strconv.FormatInt(b.branchID, 10) }

// parseBqual reads "<tag>:<branch ID>".
func parseBqual(s string) (tag string, branchID int64, ok bool) {
	tag, id, found := strings.Cut(s, ":")
	if !found || len(tag) != 8 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return tag, n, true
}

// parseMySQLXID reads one XA RECOVER row of gtx's; ok is false for others.
func parseMySQLXID(formatID int64, gtridLen, bqualLen int, data []byte) (branchXID, bool) {
	if (formatID != FormatID && formatID != FormatIDThreePhase) || gtridLen < 0 || bqualLen < 0 || gtridLen+bqualLen != len(data) {
		return branchXID{}, false
	}
	xid := string(data[:gtridLen])
	tag, id, ok := parseBqual(string(data[gtridLen:]))
	if !ok || gtx.ValidateXID(xid) != nil {
		return branchXID{}, false
	}
	return branchXID{xid: xid, branchID: id, tag: tag, threePhase: formatID == FormatIDThreePhase}, true
}

// parseGID reads a PostgreSQL GID of gtx's; ok is false for others.
func parseGID(gid string) (branchXID, bool) {
	rest, found := strings.CutPrefix(gid, "gtx:")
	threePhase := false
	if !found {
		if rest, found = strings.CutPrefix(gid, "gtx3:"); !found {
			return branchXID{}, false
		}
		threePhase = true
	}
	// "<tag>:<branch ID>:<XID>", the XID itself possibly holding colons.
	tag, rest, _ := strings.Cut(rest, ":")
	id, xid, found := strings.Cut(rest, ":")
	if !found {
		return branchXID{}, false
	}
	tag, n, ok := parseBqual(tag + ":" + id)
	if !ok || gtx.ValidateXID(xid) != nil {
		return branchXID{}, false
	}
	return branchXID{xid: xid, branchID: n, tag: tag, threePhase: threePhase}, true
}
