// The NDJSON transport: one stream of JSON lines per collection, read with
// fetch, so that the token travels in the Authorization header.
import { StreamLink } from './stream.js';

/**
 * NDJSONParser reads newline-delimited JSON: each line one JSON value. Feed
 * it decoded text with push, in chunks of any size (a line may come in many
 * chunks, a chunk hold many lines); it calls onValue with each line's value
 * when it is an object. "\r\n" ends a line too; blank lines, and lines that
 * are not JSON objects, are skipped.
 */
export class NDJSONParser {
  /** @type {string[]} the start of the current line, in the pieces it came in */
  #parts = [];

  /** @param {(value: any) => void} onValue */
  constructor(onValue) {
    this.onValue = onValue;
  }

  /** @param {string} chunk */
  push(chunk) {
    let start = 0;
    for (let i = chunk.indexOf('\n'); i >= 0; i = chunk.indexOf('\n', start)) {
      this.#parts.push(chunk.slice(start, i));
      start = i + 1;
      const line = this.#parts.join('');
      this.#parts = [];
      this.#line(line);
    }
    if (start < chunk.length) this.#parts.push(chunk.slice(start));
  }

  /** @param {string} line */
  #line(line) {
    /** @type {unknown} */
    let v;
    try { v = JSON.parse(line); } catch { return; } // blank, cut or not JSON
    if (v && typeof v === 'object' && !Array.isArray(v)) this.onValue(v);
  }
}

/**
 * NDJSONLink follows each view over GET …/stream (application/x-ndjson):
 * the WebSocket's server messages, one per line — reset, catchup, commit,
 * progress (a filtered view's), ping keep-alives, and an error line before
 * the server ends a stream on its own — resumed with
 * ?after=VERSION&epoch=EPOCH; a filtered view's filter goes in where=. The session uses it in
 * place of SSE when it has a token. See StreamLink for how a stream is read
 * and reopened.
 */
export class NDJSONLink extends StreamLink {
  /** @returns {'ndjson'} */
  get kind() { return 'ndjson'; }

  /**
   * @param {import('./view.js').View<any>} v
   * @param {import('./http.js').Cursor | null} cur
   */
  _request(v, cur) {
    const q = [];
    if (cur) q.push(`after=${cur.after}`, `epoch=${encodeURIComponent(cur.epoch)}`);
    const where = v._whereQuery();
    if (where) q.push(where);
    if (v._presence) q.push('presence=1');
    const path = `/v1/collections/${v.name}/stream${q.length ? `?${q.join('&')}` : ''}`;
    return { path, headers: { Accept: 'application/x-ndjson' }, type: 'application/x-ndjson' };
  }

  /** @param {(m: import('./stream.js').StreamMessage) => void} onMessage */
  _decoder(onMessage) {
    return new NDJSONParser(onMessage);
  }
}
