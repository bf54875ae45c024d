//go:build !race

package feedstore

const raceEnabled = false
