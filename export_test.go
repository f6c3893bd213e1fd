package viewsync

// Booked reports whether the hub's books hold the time of the
// collection's commit version, as they do once the hub has published it
// (see Hub.publish). Collection.Wait may return a head read through the
// store before the watcher's event reaches the books; tests wait for this.
func (h *Hub) Booked(collection string, version uint64) bool {
	h.vis.mu.Lock()
	defer h.vis.mu.Unlock()
	_, ok := h.vis.commitTimeLocked(collection, version)
	return ok
}
