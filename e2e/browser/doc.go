// Package browser holds viewsync's real-browser tests: the products demo,
// served by the real viewsync binary, driven in headless Chromium through
// the DevTools protocol (chromedp).
//
// TestMain builds the binary once; each test starts it as a child process
// ('viewsync serve --addr 127.0.0.1:PORT --data DIR') with a fresh store,
// opens the demo in one or more tabs of its own browser and checks what a
// person would see: changes made in one tab appear in the others over each
// transport (WebSocket, Server-Sent Events, long-poll, poll); what a user is
// typing is never overwritten, and a remote change to it shows as a
// conflict resolved by "keep mine" or "take theirs"; pages ride out a server
// restart without reloading; a server call resolves only once the page shows
// its writes. One test saves a screenshot of the demo, one measures the time
// from a save in one tab to its render in another.
//
// The tests synchronise on the page's own state (polled in the page, with a
// deadline), never on sleeps. Each tab runs under the demo's
// Content-Security-Policy: the checks are evaluated through the DevTools
// protocol, which the policy does not govern, and build no code from strings
// inside the page.
//
// Environment:
//
//	VIEWSYNC_CHROMIUM    path of the browser (default /usr/bin/chromium, else
//	                     chromium or chromium-browser on PATH)
//	VIEWSYNC_SCREENSHOT  also write TestScreenshot's PNG here (a relative path
//	                     is taken from the module root), e.g.
//	                     VIEWSYNC_SCREENSHOT=docs/screenshot.png
//
// Caveats: without Chromium every test fails, by design: install it
// (Debian: apt-get install chromium; scripts/test.sh does). The browser runs
// with --no-sandbox, as it must as root in a container; the pages it opens
// are only the demo on 127.0.0.1. The latency test's timings come from one
// machine running the server, the browser and the tests (under the race
// detector) at once: compare them with each other, not with production.
//
// The package has no code of its own; its tests are the point.
package browser
