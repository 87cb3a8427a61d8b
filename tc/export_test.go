package tc

import "context"

// TakeOver lets the tests run takeOver, which no exported method reaches
// with every true yet.
func TakeOver(ctx context.Context, s *Server, every bool) { s.takeOver(ctx, every) }
