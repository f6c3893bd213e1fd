package browser

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// Size of the screenshot (CSS pixels at scale 1).
const shotWidth, shotHeight = 1200, 800

// TestScreenshot saves a PNG of the demo with a few products, live, to
// t.TempDir() always and, when VIEWSYNC_SCREENSHOT is set, to that path
// too (relative to the module root): VIEWSYNC_SCREENSHOT=docs/screenshot.png.
func TestScreenshot(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "")
	srv.put("p-01-lamp", product{Name: "Desk lamp", Description: "Brass, with a linen shade", Price: 49, Category: "lighting"})
	srv.put("p-02-kettle", product{Name: "Kettle", Description: "Stainless steel, 1.7 l", Price: 34.5, Category: "kitchen"})
	srv.put("p-03-mug", product{Name: "Mug", Description: "Stoneware, hand glazed", Price: 12, Category: "kitchen"})

	p := b.open(t, "A", srv.url+"/")
	p.waitLive("ws")
	p.waitRow("p-03-mug", "shown", `r`, changeTimeout)

	// A few live changes, so that the log of sync references has some.
	srv.put("p-04-chair", product{Name: "Reading chair", Description: "Oak and wool", Price: 320, Category: "furniture"})
	srv.patch("p-02-kettle", map[string]any{"price": 29.9})
	srv.put("p-05-rug", product{Name: "Rug", Description: "Wool, 140 × 200 cm", Price: 180, Category: "furniture"})
	p.waitRow("p-05-rug", "shown", `r && r.price === '180.00'`, changeTimeout)
	p.waitRow("p-02-kettle", "repriced", `r && r.price === '29.90'`, changeTimeout)
	p.waitFor("four log entries", `document.querySelectorAll('[data-testid="sync-entry"]').length >= 4`, changeTimeout, nil)

	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(shotWidth, shotHeight)); err != nil {
		t.Fatalf("setting the viewport: %v", err)
	}
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if cfg.Width != shotWidth || cfg.Height != shotHeight {
		t.Errorf("screenshot is %dx%d, want %dx%d", cfg.Width, cfg.Height, shotWidth, shotHeight)
	}
	paths := []string{filepath.Join(t.TempDir(), "screenshot.png")}
	if dst := os.Getenv("VIEWSYNC_SCREENSHOT"); dst != "" {
		if !filepath.IsAbs(dst) {
			dst = filepath.Join(moduleRoot, dst)
		}
		paths = append(paths, dst)
	}
	for _, path := range paths {
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatalf("saving the screenshot: %v", err)
		}
		t.Logf("screenshot (%dx%d, %d bytes): %s", cfg.Width, cfg.Height, len(img), path)
	}
}
