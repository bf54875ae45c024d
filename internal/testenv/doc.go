// Package testenv is the one harness integration tests use: an in-memory
// devstack (kfake broker + srfake registry on loopback) per test, plus
// clients seeded with its addresses.
//
// Everything testenv creates is closed through t.Cleanup, so tests never
// close the environment themselves. testenv is imported only by tests and
// test binaries; it must not be used by production code.
package testenv
