// Package storetest is the conformance suite for implementations of
// tc.Store and tc.LockStore. Every implementation runs it from its own tests,
// against the real database or server it targets:
//
//	func TestConformance(t *testing.T) {
//		storetest.RunStore(t, func(t *testing.T) tc.Store {
//			return openEmptyStore(t) // a store holding no sessions
//		})
//		storetest.RunLockStore(t, func(t *testing.T) tc.LockStore {
//			return openEmptyLockStore(t) // a store holding no locks
//		})
//	}
//
// The suites run their subtests one after another and call the constructor
// once per subtest; it must return a store that holds nothing (a fresh
// database, truncated tables, or a new key prefix) and arrange its own
// cleanup with t.Cleanup. The suites check only what the doc comments of
// tc.Store and tc.LockStore promise: results, errors (with errors.Is and
// errors.As), atomicity of conditional changes under concurrent callers, and
// that a refused change changes nothing.
//
// Times handed to a store are whole milliseconds, and times read back are
// compared to the millisecond, so a store may keep milliseconds or anything
// finer.
package storetest
