package load

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

// Config is what Run places.
type Config struct {
	// Concurrency is the number of workers, each with one order in flight.
	Concurrency int
	// Orders stops the run after this many orders; 0 means no limit.
	Orders int
	// Duration stops the run after this long; 0 means no limit. One of
	// Orders and Duration is required.
	Duration time.Duration
	// Modes are picked from at random for each order, evenly.
	Modes []string
	// FailRatio is the share of orders asked to fail, each at a random
	// participant (inventory, account or order).
	FailRatio float64
	// DelayRatio is the share of orders sent with delay_ms = Delay, which
	// widens the window between the branches' work and the commit (for
	// fault injection).
	DelayRatio float64
	Delay      time.Duration // see DelayRatio
	// MaxQuantity bounds the random quantity of an order (1 to
	// MaxQuantity); 0 means 3.
	MaxQuantity int64
	// OnOrder, when set, is called after each order with its outcome; it
	// must be safe for concurrent use (a progress bar).
	OnOrder func(Outcome)
}

// Validate reports the first problem with c.
func (c *Config) Validate() error {
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("load: concurrency must be at least 1, got %d", c.Concurrency)
	case c.Orders < 0 || c.Duration < 0 || c.Orders == 0 && c.Duration == 0:
		return errors.New("load: give a positive number of orders, a positive duration, or both")
	case len(c.Modes) == 0:
		return errors.New("load: give at least one mode")
	case c.FailRatio < 0 || c.FailRatio > 1:
		return fmt.Errorf("load: the failure ratio must be within [0, 1], got %v", c.FailRatio)
	case c.DelayRatio < 0 || c.DelayRatio > 1 || c.Delay < 0:
		return fmt.Errorf("load: the delay ratio must be within [0, 1] and the delay not negative, got %v and %v", c.DelayRatio, c.Delay)
	case c.MaxQuantity < 0:
		return fmt.Errorf("load: the largest quantity must be positive, got %d", c.MaxQuantity)
	}
	for _, m := range c.Modes {
		if !slices.Contains(order.Modes, m) {
			return fmt.Errorf("load: mode %q is not one of %v", m, order.Modes)
		}
	}
	return nil
}

// Outcome is what became of one order.
type Outcome struct {
	Request order.PlaceRequest // what was placed
	// Code is the HTTP status, 0 when no answer came.
	Code    int
	Result  order.PlaceResult // the decoded answer
	Err     error             // set when no answer was read
	Latency time.Duration     // from request to answer
}

// Result is what Run measured.
type Result struct {
	Elapsed   time.Duration // the run's length
	Placed    int           // orders sent
	Committed int           // 200 answers
	// RolledBack counts 409 answers; Unexpected counts rolled-back orders
	// that were not asked to fail (lock timeouts, out of stock) and
	// committed orders that were.
	RolledBack int
	Unexpected int // see RolledBack
	// Unknown counts orders with no answer or an answer of another status;
	// FirstUnknown is the first such error.
	Unknown      int
	FirstUnknown error // see Unknown
	// ByMode counts committed and rolled-back orders per mode.
	ByMode map[string][2]int
	// Reasons counts the errors of orders rolled back without being asked
	// to fail, by message with digits masked.
	Reasons   map[string]int
	latencies []time.Duration
}

// Throughput is orders placed per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Placed) / r.Elapsed.Seconds()
}

// Percentile returns the p-th (0 to 1) latency of the answered orders.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(p*float64(len(r.latencies)-1))]
}

// Run places orders from cfg.Concurrency workers until cfg.Orders were
// placed, cfg.Duration passed or ctx is done.
func Run(ctx context.Context, c *Client, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxQuantity == 0 {
		cfg.MaxQuantity = 3
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var (
		mu    sync.Mutex
		res   = &Result{ByMode: map[string][2]int{}, Reasons: map[string]int{}}
		next  int
		wg    sync.WaitGroup
		start = time.Now()
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if cfg.Orders > 0 && next >= cfg.Orders {
			return false
		}
		next++
		return true
	}
	users := Users()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && take() {
				req := order.PlaceRequest{
					User:     users[rand.IntN(len(users))],
					SKU:      inventory.SKUs[rand.IntN(len(inventory.SKUs))],
					Quantity: 1 + rand.Int64N(cfg.MaxQuantity),
					Mode:     cfg.Modes[rand.IntN(len(cfg.Modes))],
				}
				if rand.Float64() < cfg.FailRatio {
					req.Fail = order.Failures[1+rand.IntN(len(order.Failures)-1)]
				}
				if rand.Float64() < cfg.DelayRatio {
					req.DelayMS = cfg.Delay.Milliseconds()
				}
				t0 := time.Now()
				code, out, err := c.Place(ctx, req)
				o := Outcome{Request: req, Code: code, Result: out, Err: err, Latency: time.Since(t0)}
				if err != nil && ctx.Err() != nil && cfg.Duration > 0 {
					return // cut by the end of the run: not counted
				}
				mu.Lock()
				res.add(o)
				mu.Unlock()
				if cfg.OnOrder != nil {
					cfg.OnOrder(o)
				}
				if err != nil || code == http.StatusServiceUnavailable {
					// The service or the coordinator is down: give it a moment
					// rather than spend the run's orders on it.
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res, nil
}

func (r *Result) add(o Outcome) {
	r.Placed++
	m := r.ByMode[o.Request.Mode]
	switch {
	case o.Err == nil && o.Code == http.StatusOK:
		r.Committed++
		m[0]++
		if o.Request.Fail != "" {
			r.Unexpected++
		}
	case o.Err == nil && o.Code == http.StatusConflict:
		r.RolledBack++
		m[1]++
		if o.Request.Fail == "" {
			r.Unexpected++
			r.Reasons[mask(o.Result.Error)]++
		}
	default:
		r.Unknown++
		if r.FirstUnknown == nil {
			r.FirstUnknown = o.Err
			if o.Err == nil {
				r.FirstUnknown = fmt.Errorf("load: answer %d: %s", o.Code, o.Result.Error)
			}
		}
	}
	r.ByMode[o.Request.Mode] = m
	if o.Err == nil {
		r.latencies = append(r.latencies, o.Latency)
	}
}

// mask replaces runs of digits with "N" and cuts s to 160 bytes, so errors
// that differ only in IDs count as one.
func mask(s string) string {
	var b strings.Builder
	digits := false
	for _, c := range s {
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('N')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(c)
	}
	out := b.String()
	if len(out) > 160 {
		out = out[:160] + "..."
	}
	return out
}
