// The push transports over HTTP (SSE, NDJSON): one streamed GET per view,
// read with fetch.
import { CODE_STATUS, ViewsyncError } from './errors.js';
import { HTTPLink } from './http.js';
import { backoff, noop, sleep } from './util.js';

/**
 * @typedef {import('./view.js').View<any>} View
 * @typedef {import('./http.js').Cursor} Cursor
 */

/**
 * What a stream's decoder hands on: a message to apply, the error the
 * server ends a stream with, or anything else (a ping), which only shows
 * that the stream is alive.
 * @typedef {import('./state.js').Message
 *   | {type: 'presence', event: string, [field: string]: any}
 *   | {type: 'error', code?: string, message?: string}
 *   | {type: 'ping'}} StreamMessage
 */

/**
 * The request that opens one stream.
 * @typedef {object} StreamRequest
 * @property {string} path
 * @property {Record<string, string>} headers
 * @property {string} type the media type the answer must have
 */

/**
 * StreamLink is the base of the streaming transports: one GET per view that
 * the server holds open and writes messages to, read with fetch() rather
 * than EventSource so that the token goes in the Authorization header (not
 * in the URL, where logs keep it), every reopening resumes from the view's
 * own cursor, status codes and error bodies are seen, and reconnects follow
 * the session's jittered backoff. Each transport says how to open its
 * stream (_request) and how to read it (_decoder).
 *
 * A stream is reopened from the cursor at once after a gap, another epoch
 * or the server's `unauthorized` error (an expired token: the token option
 * is asked again), and after a jittered delay after any other error the
 * server ends it with (`unavailable`: busy, shutting down) or when gaps keep
 * coming. A stream that goes silent for the idle timeout (the server pings
 * idle streams), or that ends, ends the link: the session reconnects.
 */
export class StreamLink extends HTTPLink {
  /**
   * _request is the request that opens v's stream from cur (null: from
   * nothing, the stream starts with a reset).
   * @abstract
   * @param {View} v
   * @param {Cursor | null} cur
   * @returns {StreamRequest}
   */
  _request(v, cur) { // eslint-disable-line no-unused-vars
    throw new Error('StreamLink._request: implemented by each transport');
  }

  /**
   * _decoder returns a decoder that is pushed the stream's text as it
   * arrives and hands on each message.
   * @abstract
   * @param {(m: StreamMessage) => void} onMessage
   * @returns {{push(text: string): void}}
   */
  _decoder(onMessage) { // eslint-disable-line no-unused-vars
    throw new Error('StreamLink._decoder: implemented by each transport');
  }

  /**
   * _greets tells whether the server writes at once on a new stream (SSE's
   * retry hint): then the stream is live at its first byte, which must come
   * within the open timeout; otherwise it is live at the response's head.
   */
  get _greets() { return false; }

  /**
   * @param {View} v
   * @param {AbortSignal} signal
   */
  async _run(v, signal) {
    const o = this._s._opts;
    let resyncs = 0;
    for (;;) {
      const began = Date.now();
      const { path, headers, type } = this._request(v, v._cursor());
      const ac = new AbortController();
      /** @type {ReadableStreamDefaultReader<Uint8Array> | null} */
      let reader = null;
      // Cancel the body too: not every fetch ties it to the signal.
      const abort = () => { ac.abort(); reader?.cancel().catch(noop); };
      signal.addEventListener('abort', abort, { once: true });
      let watchdog = setTimeout(abort, o.openTimeout);
      /** @type {'' | 'now' | 'later'} when to reopen the stream, once the reading stops */
      let reopen = '';
      try {
        const res = await this._s._fetch('GET', path, { headers, signal: ac.signal });
        await this._check(res, `GET ${path}`);
        const ct = res.headers.get('Content-Type') || '';
        if (!ct.startsWith(type) || !res.body?.getReader) {
          throw Object.assign(new ViewsyncError('bad_response', `GET ${path}: not ${type}`, res.status), { transport: true });
        }
        reader = res.body.getReader();
        if (!this._greets) {
          clearTimeout(watchdog);
          watchdog = setTimeout(abort, o.idleTimeout);
          this._live();
        }
        const dec = new TextDecoder();
        const decoder = this._decoder((m) => {
          if (reopen) return;
          switch (m.type) {
            case 'error': {
              // The server ends the stream: say why, and reopen it from the
              // cursor (with a fresh token for an expired one).
              const code = m.code || 'unavailable';
              this._s._emit('error', new ViewsyncError(code, m.message || 'stream ended by the server', CODE_STATUS[code] ?? 0));
              reopen = code === 'unauthorized' ? 'now' : 'later';
              return;
            }
            case 'presence':
              v._presence?._message(m);
              return;
            case 'reset': case 'catchup': case 'commit': case 'progress': {
              const st = v._apply(m);
              if (st === 'gap' || st === 'epoch') reopen = 'now';
            }
          }
        });
        let gotBytes = false;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          clearTimeout(watchdog);
          // The server pings an idle stream: silence this long means a dead
          // connection or a proxy holding the stream back.
          watchdog = setTimeout(abort, o.idleTimeout);
          if (!gotBytes) { gotBytes = true; this._up(); }
          decoder.push(dec.decode(value, { stream: true }));
          if (reopen) { abort(); break; }
        }
        if (!reopen) {
          if (signal.aborted) return;
          // A stream that ends before its first byte was held back: a
          // transport problem; one that ends later is reconnected.
          throw Object.assign(new ViewsyncError('network', `GET ${path}: stream ended`, 0), { transport: !gotBytes });
        }
      } catch (e) {
        if (signal.aborted) return;
        if (!reopen) {
          if (e?.name === 'AbortError') throw Object.assign(new ViewsyncError('timeout', `GET ${path}: no data for too long`, 0), { transport: !this._proven });
          if (e?.code === 'network' && !this._proven) e.transport = true;
          throw e;
        }
      } finally {
        clearTimeout(watchdog);
        signal.removeEventListener('abort', abort);
        // The stream's presence session ended with it.
        v._presence?._down();
      }
      // Reopen from the cursor: at once after a gap or an expired token,
      // unless they keep coming; after a delay when the server is busy.
      resyncs = Date.now() - began > 5000 ? 0 : resyncs + 1;
      if (reopen === 'later' || resyncs > 1) await sleep(backoff(Math.max(resyncs, 1), o.backoffBase, o.backoffCap), signal);
      if (signal.aborted) return;
    }
  }
}
