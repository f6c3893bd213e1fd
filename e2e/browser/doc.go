// Package browser holds viewsync's real-browser tests: the products demo,
// served by the real viewsync binary ('viewsync serve --addr
// 127.0.0.1:PORT --data DIR', a fresh store per test, built once by
// TestMain), driven in headless Chromium through the DevTools protocol
// (chromedp). They check what a person would see: changes in one tab
// appear in the others over each transport (WebSocket, Server-Sent Events,
// long-poll, poll, and NDJSON with a token in its Authorization header,
// forced or chosen by auto without WebSocket); what a user types is never
// overwritten (a remote change shows as a conflict: keep mine, take
// theirs); a category filter shows a filtered view, which products move
// into and out of live, and lets go of the views it leaves; pages ride
// out a server restart; a call resolves once the page shows its writes; a
// page of another origin is told when the server was started without
// --cors-origin, and goes live with it; a fresh server shows the demo's
// sample products; a delete can be undone, from any tab; on a phone a row
// that gets a conflict is scrolled into view; plus screenshots (desktop,
// phone, dark) and the save-to-render latency. They wait on the page's own state, never on
// sleeps, under the demo's Content-Security-Policy (checks run through the
// DevTools protocol and build no code from strings in the page).
//
//	VIEWSYNC_CHROMIUM     path of the browser (default /usr/bin/chromium, else
//	                      chromium or chromium-browser on PATH)
//	VIEWSYNC_SCREENSHOTS  also write TestScreenshots' PNGs (demo-desktop.png,
//	                      demo-phone.png, demo-dark.png) into this directory
//	                      (relative to the module root), e.g. docs
//
// Caveats: without Chromium every test fails, by design (Debian: apt-get
// install chromium; scripts/test.sh does). It runs with --no-sandbox, as
// root in a container must, and opens only pages on 127.0.0.1. The
// latency test runs server, browser and tests (under -race) on one machine:
// compare its timings with each other, not with production. The package
// has no code of its own.
package browser
