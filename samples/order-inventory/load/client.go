// Package load drives the sample through its HTTP contract
// (docs in samples/order-inventory/README.md): a Client of the three
// services, a load generator (Run) that places orders from many workers with
// a mix of modes and injected failures, and the contract's invariant check
// (TakeSnapshot before, Check after).
//
//	c := load.NewClient(orderURL, inventoryURL, accountURL)
//	before, err := c.TakeSnapshot(ctx)
//	res, err := load.Run(ctx, c, load.Config{Concurrency: 8, Orders: 2000, FailRatio: 0.2, Modes: []string{"at", "tcc", "saga"}})
//	report, err := c.Check(ctx, before, time.Minute) // waits for recovery up to a minute
//	if !report.OK() { fmt.Print(report) }
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gtx-io/gtx/samples/order-inventory/account"
	"github.com/gtx-io/gtx/samples/order-inventory/inventory"
	"github.com/gtx-io/gtx/samples/order-inventory/order"
)

// ErrStatus says a service answered with a status the caller did not
// expect; it is wrapped in a *StatusError.
var ErrStatus = errors.New("load: unexpected HTTP status")

// StatusError is an answer with an unexpected status.
type StatusError struct {
	URL  string // what was asked
	Code int    // the HTTP status
	Body string // the answer's body
}

// Error describes the answer.
func (e *StatusError) Error() string {
	return fmt.Sprintf("load: %s answered %d: %s", e.URL, e.Code, e.Body)
}

// Is reports whether target is ErrStatus.
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// Client calls the three services' HTTP APIs.
type Client struct {
	OrderURL     string       // http://host:port of the order service
	InventoryURL string       // of the inventory service
	AccountURL   string       // of the account service
	HTTP         *http.Client // what calls them
}

// NewClient returns a Client of the services at those base URLs
// (http://host:port).
func NewClient(orderURL, inventoryURL, accountURL string) *Client {
	return &Client{OrderURL: orderURL, InventoryURL: inventoryURL, AccountURL: accountURL,
		HTTP: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

// Place posts an order and returns the HTTP status and the decoded answer.
// An error means no answer was read (the service is down, the connection
// broke); the order's outcome is then unknown to the caller.
func (c *Client) Place(ctx context.Context, r order.PlaceRequest) (int, order.PlaceResult, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return 0, order.PlaceResult{}, err
	}
	return c.PlaceRaw(ctx, body)
}

// PlaceRaw posts body as it is, for tests of bad input.
func (c *Client) PlaceRaw(ctx context.Context, body []byte) (int, order.PlaceResult, error) {
	var out order.PlaceResult
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.OrderURL+"/v1/orders", bytes.NewReader(body))
	if err != nil {
		return 0, out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, out, fmt.Errorf("load: place an order: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, out, fmt.Errorf("load: read the answer: %w", err)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, out, fmt.Errorf("load: decode %q: %w", raw, err)
	}
	return resp.StatusCode, out, nil
}

func (c *Client) get(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("load: get %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("load: get %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{URL: url, Code: resp.StatusCode, Body: string(raw)}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("load: decode %s: %w", url, err)
	}
	return nil
}

// Stock reads GET /v1/stock/{sku}.
func (c *Client) Stock(ctx context.Context, sku string) (inventory.Stock, error) {
	var s inventory.Stock
	return s, c.get(ctx, c.InventoryURL+"/v1/stock/"+sku, &s)
}

// Account reads GET /v1/accounts/{user}.
func (c *Client) Account(ctx context.Context, user string) (account.Account, error) {
	var a account.Account
	return a, c.get(ctx, c.AccountURL+"/v1/accounts/"+user, &a)
}

// Orders reads GET /v1/orders?user=.
func (c *Client) Orders(ctx context.Context, user string) ([]order.Order, error) {
	var o order.Orders
	return o.Orders, c.get(ctx, c.OrderURL+"/v1/orders?user="+user, &o)
}

// GetOrder reads GET /v1/orders/{id}.
func (c *Client) GetOrder(ctx context.Context, id string) (order.Order, error) {
	var o order.Order
	return o, c.get(ctx, c.OrderURL+"/v1/orders/"+id, &o)
}
