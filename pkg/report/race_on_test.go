//go:build race

package report

// raceBuild: the race detector makes each PNG render about 20 times slower.
const raceBuild = true
