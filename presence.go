package viewsync

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/viewsync/viewsync/presence"
	"github.com/viewsync/viewsync/protocol"
)

// WithPresence configures the hub's presence registry (see package
// presence): its TTL, the size of a state, the members listed before
// followers see only their count, how often a session may set its state,
// and the bus that shares presence with other nodes (which the hub then
// owns: Hub.Close closes it). Zero fields keep the defaults.
func WithPresence(po presence.Options) Option {
	return func(o *options) error {
		if po.TTL < 0 || po.MaxStateBytes < 0 || po.MaxMembers < 0 || po.MaxCollections < 0 || po.MaxQueue < 0 || po.SetRate < 0 {
			return fmt.Errorf("viewsync: negative presence option")
		}
		o.presence = po
		return nil
	}
}

// Presence returns the hub's presence registry, where connections open
// their presence sessions. Publish and follow through a Collection
// (SetPresence, FollowPresence), which apply the principal's rows.
func (h *Hub) Presence() *presence.Registry { return h.presence }

// SetPresence publishes s's presence in the collection: about record
// (empty: the collection as a whole), with state, a JSON object within the
// registry's limits (presence.Registry.CheckState). On a handle restricted
// to some rows (Where: the principal's read rows), record must be one of
// them, else the error wraps ErrNotFound, as a Get outside them does: a
// principal cannot learn, nor show others, a record id it may not read.
// Bad input fails with an error matching ErrInvalid or ErrTooLarge and
// changes nothing.
func (c *Collection) SetPresence(ctx context.Context, s *presence.Session, record string, state json.RawMessage) error {
	if record != "" {
		if err := protocol.ValidateID(record, c.hub.limits.MaxIDBytes); err != nil {
			return invalid(err)
		}
	}
	if err := c.hub.presence.CheckState(state); err != nil {
		return fmt.Errorf("viewsync: presence in %s: %w", c.name, err)
	}
	if record != "" && c.where != nil {
		if _, err := c.Get(ctx, record); err != nil {
			return fmt.Errorf("viewsync: presence on %s/%s: %w", c.name, record, err)
		}
	}
	if err := s.Set(c.name, record, state); err != nil {
		return fmt.Errorf("viewsync: presence in %s: %w", c.name, err)
	}
	return nil
}

// FollowPresence follows the collection's presence for one subscriber
// (see presence.Registry.Follow): write writes its events to the client.
// s is the subscriber's own session, if any. On a handle restricted to
// some rows (the principal's read rows), a member present on a record
// outside them is not shown; give it the principal's rows only, not a
// client's own filter.
func (c *Collection) FollowPresence(s *presence.Session, write func([]presence.Event) error) (*presence.Follower, error) {
	opts := presence.FollowOptions{Session: s, Write: write}
	if c.where != nil {
		opts.Visible = func(ctx context.Context, record string) bool {
			_, err := c.Get(ctx, record)
			return err == nil
		}
	}
	f, err := c.hub.presence.Follow(c.name, opts)
	if err != nil {
		return nil, fmt.Errorf("viewsync: follow presence of %s: %w", c.name, err)
	}
	return f, nil
}
