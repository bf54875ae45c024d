//go:build race

package feedstore

const raceEnabled = true
