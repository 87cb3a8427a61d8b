package load

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gtx-io/gtx/samples/order-inventory/account"
	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
)

// Users are the seeded users, u1 to u100.
func Users() []string {
	out := make([]string, account.SeedUsers)
	for i := range out {
		out[i] = fmt.Sprintf("u%d", i+1)
	}
	return out
}

// Snapshot is the state the invariants compare: stock per SKU, balance per
// user, and the IDs of the orders committed so far.
type Snapshot struct {
	Stock   map[string]int64 // available units by SKU
	Balance map[string]int64 // balance in cents by user
	Frozen  int64            // cents frozen by TCC Trys, summed over users
	Orders  map[string]bool  // IDs of the committed orders
}

// TakeSnapshot reads every seeded SKU, user and the users' orders.
func (c *Client) TakeSnapshot(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{Stock: map[string]int64{}, Balance: map[string]int64{}, Orders: map[string]bool{}}
	for _, sku := range inventory.SKUs {
		st, err := c.Stock(ctx, sku)
		if err != nil {
			return nil, err
		}
		s.Stock[sku] = st.Available
	}
	for _, u := range Users() {
		a, err := c.Account(ctx, u)
		if err != nil {
			return nil, err
		}
		s.Balance[u] = a.Balance
		s.Frozen += a.Frozen
	}
	for _, u := range Users() {
		os, err := c.Orders(ctx, u)
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			s.Orders[o.OrderID] = true
		}
	}
	return s, nil
}

// Report is the outcome of Check.
type Report struct {
	// Orders counts the orders committed between the snapshots; Units and
	// Cents sum their quantities and amounts.
	Orders int
	Units  int64 // see Orders
	Cents  int64 // see Orders
	// Problems lists each broken invariant; empty means all hold.
	Problems []string
	// Waited is how long Check waited for the invariants to hold.
	Waited time.Duration
}

// OK reports whether every invariant held.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// String describes the report: the committed orders and PASS, or FAIL with
// the first 20 problems.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "orders committed %d: %d units, %d cents\n", r.Orders, r.Units, r.Cents)
	if r.OK() {
		b.WriteString("invariants: PASS (stock and balances changed by exactly the committed orders)\n")
		return b.String()
	}
	fmt.Fprintf(&b, "invariants: FAIL (%d problems)\n", len(r.Problems))
	for i, p := range r.Problems {
		if i == 20 {
			fmt.Fprintf(&b, "  ... %d more\n", len(r.Problems)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

// Check compares the state now with before: for every SKU, the stock taken
// equals the quantities of the orders committed in between, and for every
// user the money taken equals their amounts. Transactions may still be
// finishing (a rollback retried in the background, a recovering service),
// so Check retries, also after errors reading the state, until the
// invariants hold or settle has passed, and reports the last comparison
// (or the last error).
func (c *Client) Check(ctx context.Context, before *Snapshot, settle time.Duration) (*Report, error) {
	start := time.Now()
	for {
		r, err := c.compare(ctx, before)
		if err == nil && r.OK() || time.Since(start) >= settle {
			if r != nil {
				r.Waited = time.Since(start)
			}
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (c *Client) compare(ctx context.Context, before *Snapshot) (*Report, error) {
	after, err := c.TakeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	units, cents := map[string]int64{}, map[string]int64{}
	r := &Report{}
	for _, u := range Users() {
		os, err := c.Orders(ctx, u)
		if err != nil {
			return nil, err
		}
		for _, o := range os {
			if before.Orders[o.OrderID] {
				continue
			}
			r.Orders++
			r.Units += o.Quantity
			r.Cents += o.Amount
			units[o.SKU] += o.Quantity
			cents[o.User] += o.Amount
		}
	}
	for _, sku := range inventory.SKUs {
		if got := before.Stock[sku] - after.Stock[sku]; got != units[sku] {
			r.Problems = append(r.Problems, fmt.Sprintf("SKU %s: %d units taken, committed orders hold %d", sku, got, units[sku]))
		}
	}
	for _, u := range Users() {
		if got := before.Balance[u] - after.Balance[u]; got != cents[u] {
			r.Problems = append(r.Problems, fmt.Sprintf("user %s: %d cents taken, committed orders hold %d", u, got, cents[u]))
		}
	}
	if after.Frozen != 0 {
		r.Problems = append(r.Problems, fmt.Sprintf("accounts: %d cents still frozen by unfinished TCC branches", after.Frozen))
	}
	return r, nil
}
