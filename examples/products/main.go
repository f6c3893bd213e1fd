// Command products is a Go program that embeds viewsync: a grid of products
// kept in sync across every open browser, with a server call that discounts
// every price in one commit. Run it from a checkout of viewsync,
//
//	go run ./examples/products
//
// and open http://localhost:8080 in two browsers.
//
// To start a program of your own, copy this file and put your calls
// (srv.Hub().HandleCall) and your page where it registers the demo's: the
// demo lives in this module's internal/demo, which only viewsync itself
// may import.
//
// Caveats: it serves anyone who can reach it, with every right, which the
// server accepts on a loopback address only; give server.Options a Policy
// (see docs/security.md) to listen on anything else.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"

	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/server"
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	data := flag.String("data", "products-data", "folder of the durable store")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, *data); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, data string) error {
	// The store, the hub and the whole HTTP surface: the API, SSE, the
	// NDJSON stream, WebSocket, calls and /viewsync.js.
	srv, err := server.Open(data, nil)
	if err != nil {
		return err
	}
	// The "discount" call, and sample products in a store never written.
	if err := demo.Setup(ctx, srv.Hub(), demo.Options{}); err != nil {
		srv.Close()
		return err
	}
	page := demo.Handler()
	for _, p := range demo.Patterns { // the page, beside the API
		srv.Handle(p, page)
	}
	log.Printf("serving on http://%s", addr)
	return srv.ListenAndServe(ctx, addr) // until Ctrl-C
}
