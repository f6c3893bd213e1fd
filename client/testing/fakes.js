// The fake server side client/test's session tests share (no server, no browser): a
// WebSocket class and a fetch that record what the client sends, and the
// small helpers around them.
import { connect } from '../viewsync.js';

export const BASE = 'http://vs.test';

/** open connects and closes the session when the test ends, failed or not. */
export function open(t, options) {
  const s = connect(options);
  t.after(() => s.close());
  return s;
}

/** until waits for cond, failing after ms. */
export async function until(cond, what = 'condition', ms = 3000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** tick waits ms milliseconds. */
export const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

/** json is a JSON response. */
export const json = (body, status = 200, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

/**
 * fakeWS returns a WebSocket class whose sockets open on the next tick, or
 * fail while its static fail is set; they record what is sent (parsed in
 * sent, as written in raw).
 */
export function fakeWS({ fail = false } = {}) {
  class FakeWS {
    static all = [];
    static fail = fail;
    constructor(url, protocol) {
      this.url = url;
      this.protocol = '';
      this.sent = [];
      this.raw = [];
      this.closed = false;
      FakeWS.all.push(this);
      setTimeout(() => {
        if (FakeWS.fail) { this.onerror?.({}); this.onclose?.({ code: 1006 }); return; }
        this.protocol = protocol;
        this.onopen?.({});
      }, 1);
    }
    send(s) { this.raw.push(s); this.sent.push(JSON.parse(s)); }
    close() { if (!this.closed) { this.closed = true; setTimeout(() => this.onclose?.({ code: 1000 }), 1); } }
    deliver(m) { this.onmessage?.({ data: JSON.stringify(m) }); }
    of(type) { return this.sent.filter((m) => m.type === type); }
  }
  return FakeWS;
}

/** fakeFetch routes requests to handler(method, url, init) → Response; it records them in calls. */
export function fakeFetch(handler) {
  const calls = [];
  const f = async (url, init = {}) => {
    const u = new URL(url);
    calls.push({ method: init.method || 'GET', url: u, init });
    return handler(init.method || 'GET', u, init);
  };
  f.calls = calls;
  return f;
}
