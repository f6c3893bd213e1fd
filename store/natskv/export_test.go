package natskv

// testLayout is the layout the package's test helpers give a store opened
// without one: TestMain runs the tests in each layout.
var testLayout = LayoutStream

// SetLayoutUnderTest sets the layout the test helpers give a store opened
// without one.
func SetLayoutUnderTest(layout string) { testLayout = layout }

// LayoutUnderTest is the layout the test helpers give a store opened without
// one.
func LayoutUnderTest() string { return testLayout }
