package viewsync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/viewsync/viewsync"
	"github.com/viewsync/viewsync/protocol"
	"github.com/viewsync/viewsync/store/boltstore"
	"github.com/viewsync/viewsync/transport/httpapi"
)

// Open a hub on a bbolt file, then write with optimistic concurrency: every
// write can require the version of the record it read, and a failed
// requirement changes nothing.
func Example() {
	dir, err := os.MkdirTemp("", "viewsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := boltstore.Open(filepath.Join(dir, "viewsync.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	ctx := context.Background()
	products, err := hub.Collection("products")
	if err != nil {
		log.Fatal(err)
	}

	// Create only if absent. Values are stored as compact JSON.
	lamp, err := products.Put(ctx, "p1", json.RawMessage(`{"name": "Lamp", "price": 30}`), viewsync.IfAbsent())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("created %s at version %d: %s\n", lamp.ID, lamp.Version, lamp.Value)

	_, err = products.Put(ctx, "p1", json.RawMessage(`{"name":"Desk"}`), viewsync.IfAbsent())
	fmt.Println("create it again:", errors.Is(err, viewsync.ErrPrecondition), viewsync.ErrorCode(err))

	// Update only if nobody changed it since we read it.
	lamp, err = products.Patch(ctx, "p1", json.RawMessage(`{"price": 25}`), viewsync.IfVersion(lamp.Version))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("patched at version %d: %s\n", lamp.Version, lamp.Value)

	// Several ops in one atomic commit, each record with its precondition
	// (0: must not exist). A stale one fails the whole commit.
	ops := []viewsync.Op{
		viewsync.Put("p2", []byte(`{"name":"Chair","price":40}`)),
		viewsync.Delete("p1"),
	}
	_, err = products.Commit(ctx, ops, map[string]uint64{"p1": 1, "p2": 0})
	fmt.Println("commit with a stale version:", viewsync.ErrorCode(err))
	cm, err := products.Commit(ctx, ops, map[string]uint64{"p1": lamp.Version, "p2": 0})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("commit %d: %d ops\n", cm.Version, len(cm.Ops))

	_, err = products.Get(ctx, "p1")
	fmt.Println("p1:", viewsync.ErrorCode(err))
	chair, err := products.Get(ctx, "p2")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("p2 at version %d: %s\n", chair.Version, chair.Value)
	hd, err := products.Head(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("collection version:", hd.Version)

	// Output:
	// created p1 at version 1: {"name":"Lamp","price":30}
	// create it again: true precondition_failed
	// patched at version 2: {"name":"Lamp","price":25}
	// commit with a stale version: precondition_failed
	// commit 3: 2 ops
	// p1: not_found
	// p2 at version 3: {"name":"Chair","price":40}
	// collection version: 3
}

// Embed viewsync in an existing net/http application: mount the HTTP API
// under a prefix of the application's mux, next to its own handlers.
func Example_embedInHTTPServer() {
	dir, err := os.MkdirTemp("", "viewsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "viewsync.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	api, err := httpapi.New(hub, nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from the app")
	})
	mux.Handle("/sync/", http.StripPrefix("/sync", api))

	// In production: an http.Server on mux; at shutdown, hub.Close first
	// so that long-polls answer, then Server.Shutdown.
	srv := httptest.NewServer(mux)
	defer srv.Close()

	show := func(method, path, body string, header ...string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			log.Fatal(err)
		}
		if resp.StatusCode >= 400 {
			// Errors carry a code for programs and a message for people.
			var e struct {
				Error struct{ Code string } `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				log.Fatal(err)
			}
			b = []byte("error " + e.Error.Code)
		}
		fmt.Printf("%s %s → %d %s\n", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}

	show("GET", "/hello", "")
	show("PUT", "/sync/v1/collections/todos/records/t1", `{"title": "write docs", "done": false}`,
		"Content-Type", "application/json", "If-None-Match", "*")
	show("PUT", "/sync/v1/collections/todos/records/t1", `{"title": "oops"}`,
		"Content-Type", "application/json", "If-None-Match", "*")

	// The version poll also names the epoch, which is random: print only
	// the version.
	req, err := http.NewRequest("GET", srv.URL+"/sync/v1/collections/todos/version", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		Epoch   string `json:"epoch"`
		Version uint64 `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("GET /sync/v1/collections/todos/version → %d, version %d, ETag matches: %v\n",
		resp.StatusCode, v.Version, resp.Header.Get("ETag") == fmt.Sprintf(`"%s:%d"`, v.Epoch, v.Version))

	// Output:
	// GET /hello → 200 hello from the app
	// PUT /sync/v1/collections/todos/records/t1 → 200 {"version":1,"record":{"id":"t1","value":{"title":"write docs","done":false},"version":1}}
	// PUT /sync/v1/collections/todos/records/t1 → 412 error precondition_failed
	// GET /sync/v1/collections/todos/version → 200, version 1, ETag matches: true
}

// Follow a collection live, as a long-poll does: ask for the changes after
// the cursor, and when there are none, wait for the next commit.
func ExampleCollection_Wait() {
	dir, err := os.MkdirTemp("", "viewsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "viewsync.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	hub, err := viewsync.New(st)
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	ctx := context.Background()
	todos, err := hub.Collection("todos")
	if err != nil {
		log.Fatal(err)
	}

	// Start from a snapshot: the stream continues at its version + 1.
	snap, err := todos.Snapshot(ctx)
	if err != nil {
		log.Fatal(err)
	}
	cur := viewsync.Cursor{Epoch: snap.Epoch, Version: snap.Version}

	// Meanwhile, someone writes.
	writer := make(chan error, 1)
	go func() {
		_, err := todos.Put(ctx, "a", json.RawMessage(`{"title":"buy milk"}`))
		if err == nil {
			_, err = todos.Commit(ctx, []viewsync.Op{
				viewsync.Put("b", []byte(`{"title":"call mom"}`)),
				viewsync.Put("a", []byte(`{"title":"buy milk","done":true}`)),
			}, nil)
		}
		if err == nil {
			_, err = todos.Delete(ctx, "a")
		}
		writer <- err
	}()

	for cur.Version < 3 {
		ch, err := todos.Changes(ctx, cur, viewsync.Page{Commits: 100})
		if err != nil {
			log.Fatal(err)
		}
		switch ch.Kind {
		case viewsync.KindCommits:
			for _, cm := range ch.Commits.Commits {
				for _, op := range cm.Ops {
					fmt.Printf("version %d: %s %s", cm.Version, op.Op, op.ID)
					if op.Op == protocol.OpPut {
						fmt.Printf(" = %s", op.Value)
					}
					fmt.Println()
				}
			}
			if len(ch.Commits.Commits) == 0 {
				// Up to date: block until the head moves past the cursor.
				wctx, cancel := context.WithTimeout(ctx, 25*time.Second)
				_, err := todos.Wait(wctx, cur)
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) {
					log.Fatal(err)
				}
			}
		case viewsync.KindCatchUp:
			fmt.Printf("catch up to %d: %d records, %d deleted\n", ch.CatchUp.Version, len(ch.CatchUp.Records), len(ch.CatchUp.Deleted))
		case viewsync.KindReset:
			fmt.Printf("reset to %d: %d records\n", ch.Reset.Version, len(ch.Reset.Records))
		}
		cur = ch.Head().Cursor()
	}
	if err := <-writer; err != nil {
		log.Fatal(err)
	}

	// Output:
	// version 1: put a = {"title":"buy milk"}
	// version 2: put b = {"title":"call mom"}
	// version 2: put a = {"title":"buy milk","done":true}
	// version 3: delete a
}
