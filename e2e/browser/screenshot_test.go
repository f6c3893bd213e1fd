package browser

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// shot is one of TestScreenshots' screenshots: its file name and the
// screen it is taken on.
type shot struct {
	file string
	sc   screen
}

// shots are the screenshots the README and docs show.
var shots = []shot{
	{"demo-desktop.png", screen{width: 1280, height: 800, still: true}},
	{"demo-phone.png", screen{width: 390, height: 844, mobile: true, still: true}},
	{"demo-dark.png", screen{width: 1280, height: 800, dark: true, still: true}},
}

// TestScreenshots takes PNGs of the demo on a fresh server — its sample
// products, a few live changes in the log of sync references and, on the
// wide screens, a user's edit in conflict with another's — on a desktop, a
// phone and a desktop in dark mode. Each must be a PNG of its screen's
// size that is not blank. They go to t.TempDir() always and, when
// VIEWSYNC_SCREENSHOTS names a directory (relative to the module root),
// there too: VIEWSYNC_SCREENSHOTS=docs makes the README's.
func TestScreenshots(t *testing.T) {
	b := newBrowser(t)
	srv := startServer(t, t.TempDir(), "", "--demo-seed=true")
	pages := make([]*page, len(shots))
	for i, s := range shots {
		pages[i] = b.openOn(t, s.file, srv.url+"/", s.sc)
		pages[i].waitLive("ws")
		pages[i].waitRow("p-08-espresso-cups", "shown", `r`, changeTimeout)
	}

	// A few live changes, so that the log of sync references has some.
	srv.put("p-09-cushion", product{Name: "Linen cushion", Description: "Washed linen, 50 × 50 cm", Price: 29, Category: "furniture"})
	srv.patch("p-07-kettle", map[string]any{"price": 29.9})
	srv.do("DELETE", productsPath+"/records/p-03-lantern", "", nil, nil)
	for _, p := range pages {
		p.waitRow("p-03-lantern", "removed", `!r`, changeTimeout)
		p.waitRow("p-07-kettle", "repriced", `r && r.price === '29.90'`, changeTimeout)
		p.waitRow("p-09-cushion", "added", `r`, changeTimeout)
	}
	// On the wide screens, a description being edited meets another's.
	for i, s := range shots {
		if !s.sc.mobile {
			pages[i].do("editing the lamp's description", typeInto(inRow("p-01-desk-lamp", "product-description"), "Brass arm, linen shade, dimmable"))
		}
	}
	srv.patch("p-01-desk-lamp", map[string]any{"description": "Brass arm, paper shade"})
	for i, s := range shots {
		p := pages[i]
		if !s.sc.mobile {
			p.waitRow("p-01-desk-lamp", "in conflict", `r && r.inConflict && r.conflictShown`, changeTimeout)
		}
		p.eval("scrolling to the top", `window.scrollTo(0, 0), true`, nil)
		img := p.screenshot()
		checkShot(t, s, img)
		dirs := []string{t.TempDir()}
		if dst := os.Getenv("VIEWSYNC_SCREENSHOTS"); dst != "" {
			if !filepath.IsAbs(dst) {
				dst = filepath.Join(moduleRoot, dst)
			}
			dirs = append(dirs, dst)
		}
		for _, dir := range dirs {
			path := filepath.Join(dir, s.file)
			if err := os.WriteFile(path, img, 0o644); err != nil {
				t.Fatalf("saving %s: %v", s.file, err)
			}
			t.Logf("%s (%d bytes): %s", s.file, len(img), path)
		}
	}
}

// screenshot brings the page's tab to the front and returns a PNG of its
// viewport.
func (p *page) screenshot() []byte {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, cdppage.BringToFront, cdp.Empty{}); err != nil {
		p.t.Fatalf("page %s: bringing it to the front: %v", p.name, err)
	}
	img, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("page %s: screenshot: %v", p.name, err)
	}
	return img
}

// checkShot checks that img is a PNG of s's screen size (CSS pixels at
// scale 1) that is not blank: it has many colours, none of which covers
// nearly all of it.
func checkShot(t *testing.T, s shot, img []byte) {
	t.Helper()
	m, err := png.Decode(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("%s: not a PNG: %v", s.file, err)
	}
	size := m.Bounds().Size()
	if want := (image.Point{X: int(s.sc.width), Y: int(s.sc.height)}); size != want {
		t.Errorf("%s is %dx%d, want %dx%d", s.file, size.X, size.Y, want.X, want.Y)
	}
	counts := map[[4]uint32]int{}
	n := 0
	for y := m.Bounds().Min.Y; y < m.Bounds().Max.Y; y += 2 {
		for x := m.Bounds().Min.X; x < m.Bounds().Max.X; x += 2 {
			r, g, b, a := m.At(x, y).RGBA()
			counts[[4]uint32{r >> 8, g >> 8, b >> 8, a >> 8}]++
			n++
		}
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	if len(counts) < 32 || most > n*95/100 {
		t.Errorf("%s looks blank: %d colours, the commonest on %d of %d pixels", s.file, len(counts), most, n)
	}
}
