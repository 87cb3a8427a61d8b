package raftstore

import "testing"

func TestConformanceSingleNode(t *testing.T) {
	storetestRun(t, func(t *testing.T) *Store { return newSingle(t) })
}
