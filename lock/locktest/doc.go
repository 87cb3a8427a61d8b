// Package locktest checks a lock.Backend against what package lock relies
// on: Run is the conformance suite every backend of gtx passes (Redis,
// RedLock, MySQL, ZooKeeper, etcd), and Check is a mutual-exclusion
// checker that runs several processes taking one lock with a fenced write
// in every critical section, injects faults (SIGSTOP and SIGKILL of
// holders, a restart of the server) and checks the overlaps and the token
// order afterwards. A new backend uses both from its own tests.
package locktest
