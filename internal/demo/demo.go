// Package demo is the demo of viewsync that `viewsync serve` shows at /: a
// grid of products that stays in sync across every open browser, edited in
// place without ever overwriting what a user is typing, a category filter
// that turns the grid into a filtered view (/?category=lighting: products
// come and go as their category changes), a delete that can be undone for
// a few seconds, and a server call that discounts every price in one
// commit. The example program examples/products serves it too.
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
// Setup readies a hub for the page: Register adds the "discount" call the
// page's button uses, and Seed writes a few sample products into a
// collection never written, so that a first look at the page shows some.
//
// On PostgreSQL ('viewsync serve --demo --pg-url …'), the products are the
// rows of the table public.products (OpenPostgres creates it), which a
// source feeds the collection from; clients cannot write a fed
// collection, so the page asks the call "demo.config" how to write and
// writes through the calls "products.put" and "products.delete", each
// answered once its write is in the collection (see Postgres).
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
	"log/slog"
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

// Options are the options of Setup.
type Options struct {
	// NoSeed leaves a collection never written empty: Setup does not
	// call Seed.
	NoSeed bool
	// Logger gets the line saying that the samples were written, or why
	// they could not be. Nil: slog.Default().
	Logger *slog.Logger
	// Postgres, when set, keeps the products in a PostgreSQL table that a
	// source feeds the collection from: the calls write to the table, and
	// the samples are seeded there. See OpenPostgres.
	Postgres *Postgres
}

// Setup readies hub for the demo: it registers the demo's calls
// (Register) and, unless opts.NoSeed, writes the sample products into a
// collection never written (Seed), logging one line when it did. A
// failure to seed is logged, not returned: the page works without its
// samples. Call it once at startup, before serving.
func Setup(ctx context.Context, hub *viewsync.Hub, opts Options) error {
	register, seed := Register, Seed
	if pg := opts.Postgres; pg != nil {
		register = pg.register
		seed = func(ctx context.Context, _ *viewsync.Hub) (bool, error) { return pg.seed(ctx) }
	}
	if err := register(hub); err != nil {
		return err
	}
	if opts.NoSeed {
		return nil
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	seeded, err := seed(ctx, hub)
	switch {
	case err != nil:
		log.Warn("demo: sample products not written", "collection", Collection, "err", err)
	case seeded && opts.Postgres != nil:
		log.Info("demo: seeded the empty table with sample products", "table", TableSchema+"."+TableName, "products", len(samples))
	case seeded:
		log.Info("demo: seeded the empty collection with sample products", "collection", Collection, "products", len(samples))
	}
	return nil
}

// sample is a product Seed writes.
type sample struct {
	id          string
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Price       float64 `json:"price"`
	Category    string  `json:"category"`
}

// samples are the products Seed writes. Their ids sort before those the
// page gives the products it adds (p- and the time in base 36), so that
// new products come after them.
var samples = []sample{
	{"p-01-desk-lamp", "Desk lamp", "Brass arm, linen shade", 49, "lighting"},
	{"p-02-pendant", "Pendant light", "Smoked glass globe, 30 cm", 89, "lighting"},
	{"p-03-lantern", "Lantern", "Tin and glass, for a candle or a bulb", 24.5, "lighting"},
	{"p-04-reading-chair", "Reading chair", "Oak frame, wool upholstery", 320, "furniture"},
	{"p-05-side-table", "Side table", "Walnut, 45 cm high", 110, "furniture"},
	{"p-06-bookshelf", "Bookshelf", "Birch plywood, five shelves", 189, "furniture"},
	{"p-07-kettle", "Kettle", "Stainless steel, 1.7 l", 34.5, "kitchen"},
	{"p-08-espresso-cups", "Espresso cups", "Stoneware, set of four", 22, "kitchen"},
}

// Seed writes the sample products — a few of each category the page
// offers, with names, descriptions and prices — into hub's collection
// Collection in one commit, if that collection was never written: no
// records and version 0. A collection written before, even one whose
// records were all deleted since, is left alone, so that a restart never
// seeds twice and products a user removed do not come back. Each sample's
// commit has the precondition that it does not exist yet: when another
// writer gets there first (another node of a cluster seeding the same
// store at the same time, say), Seed writes nothing. It writes nothing to
// a collection fed from a source either (see viewsync.Hub.Feed). It
// reports whether it wrote the samples.
func Seed(ctx context.Context, hub *viewsync.Hub) (bool, error) {
	col, err := hub.Collection(Collection)
	if err != nil {
		return false, err
	}
	head, err := col.Head(ctx)
	if err != nil {
		return false, fmt.Errorf("demo: seed: %w", err)
	}
	if head.Version != 0 {
		return false, nil // written before: never again
	}
	snap, err := col.Snapshot(ctx)
	if err != nil {
		return false, fmt.Errorf("demo: seed: %w", err)
	}
	if snap.Version != 0 || len(snap.Records) != 0 {
		return false, nil
	}
	ops := make([]viewsync.Op, 0, len(samples))
	ifs := make(map[string]uint64, len(samples))
	for _, s := range samples {
		b, err := json.Marshal(s)
		if err != nil {
			return false, fmt.Errorf("demo: seed: %q: %w", s.id, err)
		}
		ops = append(ops, viewsync.Put(s.id, b))
		ifs[s.id] = 0
	}
	_, err = col.Commit(ctx, ops, ifs)
	if errors.Is(err, viewsync.ErrPrecondition) || errors.Is(err, viewsync.ErrReadOnly) {
		return false, nil // seeded by another writer, or not ours to write
	}
	if err != nil {
		return false, fmt.Errorf("demo: seed: %w", err)
	}
	return true, nil
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

// Register registers the demo's calls on hub: "demo.config", which tells
// the page how it writes (Config: here, to the collection itself), and
// "discount", which takes {"percent": P} and lowers the price of every
// product by P percent, rounded to cents, in one atomic commit, answering
// {"updated": n}. Each product's version is a precondition of the commit,
// so a concurrent edit makes it read again rather than lose that edit.
func Register(hub *viewsync.Hub) error {
	if err := hub.HandleCall("demo.config", func(context.Context, *viewsync.Call) (any, error) {
		return Config{Writes: "direct"}, nil
	}); err != nil {
		return err
	}
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
