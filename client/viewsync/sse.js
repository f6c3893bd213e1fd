// The Server-Sent Events transport: one event stream per collection.
import { CODE_STATUS, ViewsyncError } from './errors.js';
import { HTTPLink } from './http.js';
import { backoff, noop, parseCursor, sleep } from './util.js';

/**
 * SSEParser reads a text/event-stream as the HTML standard defines it:
 * lines end in CRLF, LF or CR (also when split across chunks), ":" starts a
 * comment, a blank line dispatches the event gathered so far. Feed it decoded
 * text with push; it calls onEvent({type, data, id}) and keeps lastEventId.
 * The server's reconnection hint (retry) is not kept: the session's backoff
 * decides.
 */
export class SSEParser {
  /** @param {(event: {type: string, data: string, id: string}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.lastEventId = '';
    this._buf = '';
    this._skipLF = false;
    this._first = true;
    this._type = '';
    /** @type {string[]} */
    this._data = [];
    this._hasData = false;
  }

  /** @param {string} chunk decoded text */
  push(chunk) {
    let buf = this._buf + chunk;
    if (this._first && buf.length > 0) {
      if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
      this._first = buf.length === 0;
    }
    let start = 0;
    if (this._skipLF && buf.length > 0) {
      if (buf[0] === '\n') start = 1;
      this._skipLF = false;
    }
    const re = /\r\n|\r|\n/g;
    re.lastIndex = start;
    let m;
    while ((m = re.exec(buf)) !== null) {
      // A CR at the very end may be the first half of a CRLF.
      if (m[0] === '\r' && m.index === buf.length - 1) this._skipLF = true;
      this._line(buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this._buf = buf.slice(start);
  }

  /** @param {string} line */
  _line(line) {
    if (line === '') {
      this._dispatch();
      return;
    }
    if (line[0] === ':') return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event': this._type = value; break;
      case 'data': this._data.push(value); this._hasData = true; break;
      case 'id': if (!value.includes('\0')) this.lastEventId = value; break;
      default: // ignored, as the standard says
    }
  }

  _dispatch() {
    const type = this._type || 'message';
    const data = this._data.join('\n');
    const had = this._hasData;
    this._type = '';
    this._data = [];
    this._hasData = false;
    if (had) this.onEvent({ type, data, id: this.lastEventId });
  }
}

/**
 * SSELink: one event stream per collection (the contract's /events is per
 * collection), read with fetch() and our own parser rather than
 * EventSource: it sends the token as an Authorization header (not in the
 * URL, where logs keep it) and Last-Event-ID from the view's cursor on every
 * reconnect, sees status codes and error bodies, and reconnects under the
 * session's jittered backoff instead of EventSource's fixed retry.
 */
export class SSELink extends HTTPLink {
  /** @returns {'sse'} */
  get kind() { return 'sse'; }

  /**
   * @param {import('./view.js').View<any>} v
   * @param {AbortSignal} signal
   */
  async _run(v, signal) {
    const o = this._s._opts;
    let resyncs = 0;
    for (;;) {
      const began = Date.now();
      const cur = v._cursor();
      const path = `/v1/collections/${v.name}/events`;
      /** @type {Record<string, string>} */
      const headers = { Accept: 'text/event-stream' };
      if (cur) headers['Last-Event-ID'] = `${cur.epoch}:${cur.after}`;
      const ac = new AbortController();
      /** @type {ReadableStreamDefaultReader<Uint8Array> | null} */
      let reader = null;
      // Cancel the body too: not every fetch ties it to the signal.
      const abort = () => { ac.abort(); reader?.cancel().catch(noop); };
      signal.addEventListener('abort', abort, { once: true });
      let watchdog = setTimeout(abort, o.openTimeout);
      let resync = false;
      try {
        const res = await this._s._fetch('GET', path, { headers, signal: ac.signal });
        await this._check(res, `GET ${path}`);
        const ct = res.headers.get('Content-Type') || '';
        if (!ct.startsWith('text/event-stream') || !res.body?.getReader) {
          throw Object.assign(new ViewsyncError('bad_response', `GET ${path}: not an event stream`, res.status), { transport: true });
        }
        reader = res.body.getReader();
        const dec = new TextDecoder();
        const parser = new SSEParser((e) => {
          if (resync) return;
          if (e.type === 'error') {
            // The server ends the stream (an expired token): say why and
            // reopen at once from the cursor, with a fresh token.
            let m = null;
            try { m = JSON.parse(e.data)?.error; } catch { /* not JSON */ }
            const code = m?.code || 'unavailable';
            this._s._emit('error', new ViewsyncError(code, m?.message || 'stream ended by the server', CODE_STATUS[code] ?? 0));
            resync = true;
            return;
          }
          if (e.type !== 'reset' && e.type !== 'catchup' && e.type !== 'commit') return;
          let m;
          try { m = JSON.parse(e.data); } catch { return; }
          m.type = e.type;
          if (e.type === 'commit') m.epoch = parseCursor(e.id)?.epoch ?? m.epoch;
          const st = v._apply(m);
          if (st === 'gap' || st === 'epoch') resync = true;
        });
        let gotBytes = false;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          clearTimeout(watchdog);
          // The server writes a retry hint at once and pings an idle
          // stream: silence this long means a dead connection or a proxy
          // holding the stream back.
          watchdog = setTimeout(abort, o.idleTimeout);
          if (!gotBytes) { gotBytes = true; this._up(); }
          parser.push(dec.decode(value, { stream: true }));
          if (resync) { abort(); break; }
        }
        if (!resync) {
          if (signal.aborted) return;
          // A stream that ends before its first byte was held back: a
          // transport problem; one that ends later is reconnected.
          throw Object.assign(new ViewsyncError('network', `GET ${path}: stream ended`, 0), { transport: !gotBytes });
        }
      } catch (e) {
        if (signal.aborted) return;
        if (!resync) {
          if (e?.name === 'AbortError') throw Object.assign(new ViewsyncError('timeout', `GET ${path}: no data for too long`, 0), { transport: !this._proven });
          if (e?.code === 'network' && !this._proven) e.transport = true;
          throw e;
        }
      } finally {
        clearTimeout(watchdog);
        signal.removeEventListener('abort', abort);
      }
      // A gap: reopen this stream from the cursor, at once unless gaps
      // keep coming.
      resyncs = Date.now() - began > 5000 ? 0 : resyncs + 1;
      if (resyncs > 1) await sleep(backoff(resyncs, o.backoffBase, o.backoffCap), signal);
      if (signal.aborted) return;
    }
  }
}
