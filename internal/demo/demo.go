// Package demo is the demo of viewsync that `viewsync serve` shows at /: a
// grid of products that stays in sync across every open browser, edited in
// place without ever overwriting what a user is typing, a category filter
// that turns the grid into a filtered view (/?category=lighting: products
// come and go as their category changes), and a server call that discounts
// every price in one commit. The example program examples/products serves
// it too.
//
// Handler serves the page (index.html, app.js, style.css); the page imports
// the browser client from /viewsync.js and talks to the HTTP API v1, so mount
// it next to them:
//
//	mux.Handle("/v1/", api)
//	for _, p := range client.Patterns {
//		mux.Handle(p, client.Handler())
//	}
//	mux.Handle("/", demo.Handler())
//
// Register adds the "discount" call the page's button uses.
//
// Caveats: the page reads and writes the collection "products" with no
// authentication of its own; put it behind whatever guards the API.
package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
)

// Collection is the collection the demo keeps its products in. A product's
// value is {"name": string, "description": string, "price": number,
// "category": string}; the page offers the categories "lighting",
// "furniture" and "kitchen", and a product may have none.
const Collection = "products"

//go:embed index.html app.js style.css favicon.svg
var static embed.FS

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// hostRE accepts what a Host header may hold (a name or an IP literal, with
// an optional port); anything else is left out of the policy.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Patterns are the routes (http.ServeMux patterns) of Handler's files, to
// mount beside the API without taking its place at "/".
var Patterns = []string{"GET /{$}", "GET /index.html", "GET /app.js", "GET /style.css", "GET /favicon.svg"}

// Handler returns the handler of the demo's static files: GET and HEAD of
// /, /index.html, /app.js, /style.css and /favicon.svg, each with security headers (a
// Content-Security-Policy allowing only this origin, nosniff, no framing,
// no referrer). Any other path is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header(), r.Host)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		b, err := static.ReadFile(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", ct)
		// Small files that change with each release: always revalidate.
		hd.Set("Cache-Control", "no-cache")
		hd.Set("ETag", etag(b))
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}

// etag is a strong entity tag of a file's content.
func etag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// setSecurityHeaders sets the headers every response of the demo carries.
// connect-src names ws:// and wss:// of the page's own host explicitly:
// older browsers do not count WebSockets as 'self'.
func setSecurityHeaders(h http.Header, host string) {
	connect := "'self'"
	if hostRE.MatchString(host) {
		connect += " ws://" + host + " wss://" + host
	}
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src "+connect+"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}

// DiscountArg is the argument of the "discount" call.
type DiscountArg struct {
	// Percent is taken off every price: more than 0, at most 100.
	Percent float64 `json:"percent"`
}

// DiscountResult is the result of the "discount" call.
type DiscountResult struct {
	// Updated counts the products whose price changed.
	Updated int `json:"updated"`
}

// maxDiscountTries bounds the read-modify-commit loop when other writers
// keep changing products meanwhile.
const maxDiscountTries = 5

// Register registers the demo's calls on hub: "discount", which takes
// {"percent": P} and lowers the price of every product by P percent, rounded
// to cents, in one atomic commit, answering {"updated": n}. Each product's
// version is a precondition of the commit, so a concurrent edit makes it
// read again rather than lose that edit.
func Register(hub *viewsync.Hub) error {
	return hub.HandleCall("discount", discount)
}

func discount(ctx context.Context, call *viewsync.Call) (any, error) {
	var arg DiscountArg
	if err := json.Unmarshal(call.Arg, &arg); err != nil {
		return nil, &viewsync.CallError{Code: protocol.CodeBadRequest, Message: `discount: arg must be {"percent": number}`}
	}
	if !(arg.Percent > 0 && arg.Percent <= 100) {
		return nil, &viewsync.CallError{Code: protocol.CodeBadRequest, Message: "discount: percent must be more than 0 and at most 100"}
	}
	col, err := call.Collection(Collection)
	if err != nil {
		return nil, err
	}
	for range maxDiscountTries {
		snap, err := col.Snapshot(ctx)
		if err != nil {
			return nil, err
		}
		ops, ifs, err := discountOps(snap.Records, arg.Percent)
		if err != nil {
			return nil, err
		}
		if len(ops) == 0 {
			return DiscountResult{}, nil
		}
		_, err = col.Commit(ctx, ops, ifs)
		if errors.Is(err, viewsync.ErrPrecondition) {
			continue // a product changed meanwhile: read again
		}
		if err != nil {
			return nil, err
		}
		return DiscountResult{Updated: len(ops)}, nil
	}
	return nil, &viewsync.CallError{Code: protocol.CodeUnavailable, Message: "discount: products kept changing; try again"}
}

// discountOps returns the puts that discount each record with a numeric
// price, and the preconditions pinning each to the version read.
func discountOps(recs []viewsync.Record, percent float64) ([]viewsync.Op, map[string]uint64, error) {
	var ops []viewsync.Op
	ifs := map[string]uint64{}
	for _, rec := range recs {
		var v map[string]json.RawMessage
		if json.Unmarshal(rec.Value, &v) != nil {
			continue // not an object: not a product
		}
		var price float64
		if json.Unmarshal(v["price"], &price) != nil {
			continue
		}
		next := math.Round(price*(100-percent)) / 100
		if next == price {
			continue
		}
		p, err := json.Marshal(next)
		if err != nil {
			return nil, nil, fmt.Errorf("discount: price of %q: %w", rec.ID, err)
		}
		v["price"] = p
		b, err := json.Marshal(v)
		if err != nil {
			return nil, nil, fmt.Errorf("discount: %q: %w", rec.ID, err)
		}
		ops = append(ops, viewsync.Put(rec.ID, b))
		ifs[rec.ID] = rec.Version
	}
	return ops, ifs, nil
}
