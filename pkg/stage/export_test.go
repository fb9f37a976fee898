package stage

// SetDirectDecode turns DecodeParams' direct path on or off, for tests
// that hold every kind to the same answers either way.
func SetDirectDecode(on bool) (restore func()) {
	old := directDecode
	directDecode = on
	return func() { directDecode = old }
}
