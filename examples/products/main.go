// Command products is a Go program that embeds viewsync: a grid of products
// kept in sync across every open browser, with a server call that discounts
// every price in one commit. Run it from a checkout of viewsync,
//
//	go run ./examples/products
//
// and open http://localhost:8080 in two browsers.
//
// To start a program of your own, copy this file and put your calls
// (hub.HandleCall) and your page where it registers the demo's: the demo
// lives in this module's internal/demo, which only viewsync itself may
// import.
//
// Caveats: it serves anyone who can reach it, with every right; give the
// handlers an auth.Policy (see docs/security.md) before listening on
// anything but localhost.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/client"
	"github.com/viewsync/viewsync/internal/demo"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
	"github.com/viewsync/viewsync/transport/sse"
	"github.com/viewsync/viewsync/transport/ws"
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	data := flag.String("data", "products.db", "database file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, *data); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, data string) error {
	st, err := boltstore.Open(data, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		return err
	}
	if err := demo.Register(hub); err != nil {
		return err
	}

	// The HTTP API, with its two push transports: Server-Sent Events and
	// WebSocket.
	events, err := sse.New(hub, nil)
	if err != nil {
		return err
	}
	sockets, err := ws.New(hub, nil)
	if err != nil {
		return err
	}
	api, err := httpapi.New(hub, &httpapi.Options{Events: events, WebSocket: sockets})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	for _, p := range client.Patterns { // the browser client, /viewsync.js
		mux.Handle(p, client.Handler())
	}
	mux.Handle("/", demo.Handler()) // the page

	srv := &http.Server{Addr: addr, Handler: mux}
	srv.RegisterOnShutdown(func() {
		hub.Close() // ends long-polls and streams; WebSockets are told apart
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sockets.Shutdown(ctx); err != nil {
			log.Print(err)
		}
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("serving on http://%s", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done(): // Ctrl-C
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}
