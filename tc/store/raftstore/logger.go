package raftstore

import (
	"context"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// newRaftLogger returns an hclog.Logger for Raft that writes to log: each
// line Raft writes becomes one record at the level Raft gave it.
func newRaftLogger(log *slog.Logger) hclog.Logger {
	level := hclog.Info
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       level,
		Output:      slogWriter{log: log.With("component", "raft")},
		DisableTime: true,
	})
}

// slogWriter turns hclog's lines ("[WARN]  raft: message: k=v") into slog
// records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[TRACE]": slog.LevelDebug, "[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERROR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			level, line = l, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "raft: ")
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}
