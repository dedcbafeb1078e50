// The browser a web page gives NICE's SDK, in a few lines over Node 20: storage, window, document,
// navigator, IndexedDB (fake-indexeddb), Web Workers (run in this thread, from the SDK's own worker
// code) and a fetch that records every call and maps the host names the SDK builds from discovery
// (api-{cluster}.{acdDomain}) to the sandbox, as a hosts file would. The SDK's code is not touched.
import 'fake-indexeddb/auto';
import { resolveObjectURL } from 'node:buffer';
import { webcrypto } from 'node:crypto';
import * as rxjs from 'rxjs';
import { fromFetch } from 'rxjs/fetch';

class MemoryStorage {
  #items = new Map();
  get length() { return this.#items.size; }
  key(i) { return [...this.#items.keys()][i] ?? null; }
  getItem(k) { return this.#items.has(String(k)) ? this.#items.get(String(k)) : null; }
  setItem(k, v) { this.#items.set(String(k), String(v)); }
  removeItem(k) { this.#items.delete(String(k)); }
  clear() { this.#items.clear(); }
}

const nativeFetch = globalThis.fetch.bind(globalThis);

/** Every HTTP exchange the SDK made: what it sent and what the sandbox answered. */
export const journal = [];
/** Host names (lower case) that resolve to the sandbox, like lines of a hosts file. */
export const hosts = new Map();

function headersOf(h) {
  const out = {};
  if (!h) return out;
  if (typeof h.forEach === 'function') h.forEach((v, k) => { out[k.toLowerCase()] = v; });
  else for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = String(v);
  return out;
}

async function recordingFetch(input, init = {}) {
  const url = typeof input === 'string' ? input : input.url;
  let target = url;
  const parsed = new URL(url);
  const mapped = hosts.get(parsed.host.toLowerCase());
  if (mapped) target = mapped + parsed.pathname + parsed.search;
  const sent = headersOf(init.headers);
  const entry = {
    method: (init.method || 'GET').toUpperCase(), url, sentTo: target === url ? undefined : target,
    headers: sent, body: typeof init.body === 'string' ? init.body : undefined, at: Date.now(),
  };
  journal.push(entry);
  // The browser fetch ignores mode/cache outside a page; Node's rejects a non-standard headers object.
  const { mode, cache, ...rest } = init;
  try {
    const response = await nativeFetch(target, { ...rest, headers: sent });
    entry.status = response.status;
    entry.answeredAt = Date.now();
    entry.answerHeaders = headersOf(response.headers);
    const copy = response.clone();
    copy.text().then((t) => {
      entry.answer = t.slice(0, 600);
      try { entry.answerSessionId = JSON.parse(t).sessionId; } catch { /* not JSON */ }
    }, () => {});
    return response;
  } catch (err) {
    entry.error = String(err && err.cause ? `${err.message}: ${err.cause.message || err.cause}` : err);
    throw err;
  }
}
globalThis.fetch = recordingFetch;

// Web Workers: the SDK builds them from a Blob of its own code. They run here, in this thread, with
// `self` as their global; importScripts of rxjs gets the rxjs the SDK installed (no network). A message
// from a worker reaches the page `workerHopMs` later (SDK_CONTRACT_CONFIG), as on a busy page: the SDK
// must not rely on handling its worker's answer before the next HTTP answer arrives.
const workerHopMs = Number(JSON.parse(process.env.SDK_CONTRACT_CONFIG || '{}').workerHopMs ?? 0);
class InThreadWorker {
  constructor(url, options = {}) {
    this.name = options.name;
    this.onmessage = null;
    this.terminated = false;
    const scope = {
      onmessage: null,
      importScripts: () => { scope.rxjs = { ...rxjs, fetch: { fromFetch } }; },
      postMessage: (data) => {
        const msg = structuredClone(data);
        setTimeout(() => { if (!this.terminated && this.onmessage) this.onmessage({ data: msg }); }, workerHopMs);
      },
    };
    this.timers = [];
    const track = (fn) => (...a) => { const id = fn(...a); this.timers.push(id); return id; };
    const quiet = { log() {}, info() {}, debug() {}, warn() {}, error() {} };
    this.ready = resolveObjectURL(url).text().then((code) => {
      const run = new Function('self', 'console', 'setTimeout', 'setInterval', code);
      run(scope, quiet, track(setTimeout), track(setInterval));
      this.scope = scope;
    });
  }
  postMessage(data) {
    const msg = structuredClone(data);
    this.ready.then(() => { if (!this.terminated && this.scope.onmessage) this.scope.onmessage({ data: msg }); });
  }
  terminate() {
    this.terminated = true;
    for (const id of this.timers) { clearTimeout(id); clearInterval(id); }
  }
}

// Node 18 (Debian 12's) lacks these two globals of a page; Node 20 has them.
if (!globalThis.crypto) globalThis.crypto = webcrypto;
if (!globalThis.CustomEvent) {
  globalThis.CustomEvent = class CustomEvent extends Event {
    constructor(type, init = {}) { super(type, init); this.detail = init.detail ?? null; }
  };
}

const windowTarget = new EventTarget();
const win = globalThis;
win.window = win;
win.self = win;
win.addEventListener = windowTarget.addEventListener.bind(windowTarget);
win.removeEventListener = windowTarget.removeEventListener.bind(windowTarget);
win.dispatchEvent = windowTarget.dispatchEvent.bind(windowTarget);
win.parent = { postMessage() {} };
win.localStorage = new MemoryStorage();
win.sessionStorage = new MemoryStorage();
win.Worker = InThreadWorker;
win.location = new URL('https://agent.sandbox.invalid/');
win.document = {
  cookie: '', hidden: false, visibilityState: 'visible',
  addEventListener() {}, removeEventListener() {}, getElementById() { return null; },
  createElement() { return { style: {}, setAttribute() {}, appendChild() {} }; },
};
try {
  Object.defineProperty(win, 'navigator', { value: { userAgent: 'node', onLine: true, language: 'en-US', languages: ['en-US'] }, configurable: true });
} catch { /* Node 21+ has a navigator of its own */ }

// A page logs a promise the SDK leaves unhandled and carries on; Node would end the process.
export const unhandled = [];
process.on('unhandledRejection', (reason) => { unhandled.push(reason); });
