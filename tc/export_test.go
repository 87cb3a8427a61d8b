package tc

import "context"

// TakeOver lets the tests run takeOver with every true on a store that is
// no Leader.
func TakeOver(ctx context.Context, s *Server, every bool) { s.takeOver(ctx, every) }
