package natskv

// SetDefaultLayout sets the layout of stores opened without one, so that
// the package's tests run in each layout.
func SetDefaultLayout(layout string) { defaultLayout = layout }

// DefaultLayout is the layout of stores opened without one.
func DefaultLayout() string { return defaultLayout }
