package browser

import (
	"testing"

	"github.com/chromedp/chromedp"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// startNATS starts an in-process JetStream server for viewsync nodes
// (atomic batches as large as serve's default --nats-max-batch) and
// shuts it down when the test ends.
func startNATS(t *testing.T) *natsserver.Server {
	t.Helper()
	o := &natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	o.JetStreamLimits.MaxBatchSize = 2048
	s, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(startTimeout) {
		t.Fatal("nats server not ready")
	}
	return s
}

// TestPresenceAcrossNodes: two viewsync nodes on one NATS server, Ana's
// page on the first, Ben's on the second, over each push transport. A
// row Ana edits shows "Ana is editing" on Ben's page, and the other way
// round; the badge goes when the focus leaves the rows, and when Ana's
// tab closes (her node says she left, at once).
func TestPresenceAcrossNodes(t *testing.T) {
	b := newBrowser(t)
	ns := startNATS(t)
	flags := []string{"--engine", "nats", "--nats-url", ns.ClientURL(), "--presence-ttl", presenceTTL.String()}
	one := startServer(t, t.TempDir(), "", flags...)
	two := startServer(t, t.TempDir(), "", flags...)
	one.putLampAndChair()
	for _, tr := range []string{"ws", "sse"} {
		t.Run(tr, func(t *testing.T) {
			// Ana, on the first node, types in the lamp's name: Ben, on
			// the second, sees her there.
			ana, ben := anaEditsTheLamp(t, b, one.url, two.url, tr)
			// The second node counts her, and what it heard of her.
			for name, min := range map[string]float64{
				"viewsync_presence_members":                            1,
				"viewsync_presence_remote":                             1,
				`viewsync_presence_bus_messages_total{direction="in"}`: 1,
				`viewsync_presence_bus_bytes_total{direction="in"}`:    1,
			} {
				if v, err := two.metric(name); err != nil || v < min {
					t.Errorf("second node: %s = %v (%v), want at least %v", name, v, err, min)
				}
			}
			if v, err := two.metric("viewsync_presence_bus_dropped_total"); err != nil || v != 0 {
				t.Errorf("second node: viewsync_presence_bus_dropped_total = %v (%v), want 0", v, err)
			}

			// Ben edits the chair: Ana sees him there.
			ben.do("focusing the chair", chromedp.Focus(chromedp.CSS(inRow("p-2-chair", "product-description"))))
			ana.waitFor("Ben's badge on the chair", editingJS("p-2-chair")+`?.by === 'Ben'`, changeTimeout, nil)

			// Focus leaves the rows: the badges go on both nodes.
			leaveRows(ana, ben)

			// Ana edits the chair, then her tab closes: her node says she
			// left, and Ben's badge goes.
			gone := anaLeavesFromTheChair(t, ana, ben, changeTimeout)
			t.Logf("%s: Ana's badge went from the other node's page %v after her tab closed", tr, gone)
			if err := chromedp.Cancel(ben.ctx); err != nil {
				t.Fatalf("closing Ben's tab: %v", err)
			}
		})
	}
}
