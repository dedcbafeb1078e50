// Drives a CXone sandbox through NICE's own SDK (@nice-devone/*), by its public functions only, and
// prints one row per step: step, the SDK call, ok/FAIL, detail. Exit status 1 when any step failed.
// Configuration: a JSON object in the SDK_CONTRACT_CONFIG environment variable (see docs/sdk-contract.md).
import { journal, hosts } from './shims.mjs';
import { writeFileSync } from 'node:fs';
import { CXoneAuth, CXoneUser, AuthStatus } from '@nice-devone/auth-sdk';
import { ACDSessionManager, AdminService, StorageKeys } from '@nice-devone/core-sdk';
import { CXoneLeaderElector, AgentSessionStatus, DirectoryEntities } from '@nice-devone/common-sdk';
import { CXoneDirectory } from '@nice-devone/agent-sdk';
import { AgentStateService } from '@nice-devone/acd-sdk';

const cfg = JSON.parse(process.env.SDK_CONTRACT_CONFIG || '{}');
const host = cfg.authHost; // the sandbox's base URL, e.g. http://127.0.0.1:PORT
const pollWait = (cfg.pollWaitSeconds ?? 75) * 1000; // get-next-event long polls up to 60 s (the SDK's timeout)
const stepWait = (cfg.stepWaitSeconds ?? 10) * 1000;
const longWait = pollWait * 2 + stepWait; // a step that waits on polls

const rows = [];
// Secrets and tokens never reach the table (short test values are left: they would mangle the text).
const secretValues = () => [cfg.qaKey?.secret, cfg.noImpKey?.secret, cfg.clientSecret, ...tokens].filter((s) => s && s.length >= 8);
const tokens = [];

function redact(text) {
  let out = String(text ?? '');
  for (const s of secretValues()) out = out.split(s).join('<redacted>');
  return out.replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '<jwt>');
}

/** The last exchange the SDK made whose URL matches `re`, described for a failure's detail. */
function exchange(re, from = 0) {
  const hits = journal.slice(from).filter((e) => re.test(e.url));
  const e = hits[hits.length - 1];
  if (!e) return 'the SDK sent no request';
  const ct = e.headers['content-type'] ? ` Content-Type: ${e.headers['content-type']};` : ' no Content-Type;';
  const body = e.body !== undefined ? ` body ${e.body};` : '';
  const desc = e.answerHeaders?.icstatusdescription ? ` icStatusDescription: ${e.answerHeaders.icstatusdescription};` : '';
  const answer = e.error ? `error ${e.error}` : `${e.status}${desc} ${(e.answer ?? '').slice(0, 300)}`;
  return redact(`sent ${e.method} ${e.url}${e.sentTo ? ` (to ${e.sentTo})` : ''};${ct}${body} answered ${answer}`);
}

/** The exchanges since `from`, one short item each. */
function calls(from) {
  return journal.slice(from).map((e) => `${e.method} ${new URL(e.url).pathname} ${e.status ?? e.error ?? 'pending'}`).join(', ') || 'none';
}

function describe(err) {
  if (err === undefined || err === null) return 'rejected';
  if (typeof err === 'string') return err;
  const status = err.data?.status ?? err.status;
  return `${err.errorType || err.name || 'error'}: ${err.message || err.errorMessage || ''}${status ? ` (HTTP ${status})` : ''}`;
}

async function step(name, call, fn, timeoutMs = stepWait) {
  const mark = journal.length;
  let ok = false;
  let detail = '';
  let timer;
  // Some of the SDK's promises never settle when a request fails (a .then without a reject handler).
  const hung = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fail(`the SDK's promise did not settle within ${timeoutMs / 1000}s; calls: ${calls(mark)}; last: ${exchange(/./, mark)}`)), timeoutMs);
  });
  try {
    const r = await Promise.race([fn(mark), hung]);
    clearTimeout(timer);
    ok = r?.ok ?? true;
    detail = r?.detail ?? '';
  } catch (err) {
    clearTimeout(timer);
    ok = false;
    detail = `${describe(err)}; ${err?.exchange ?? ''}`;
  }
  rows.push({ step: name, call, result: ok ? 'ok' : 'FAIL', detail: redact(detail) });
  if (cfg.progress) process.stderr.write(`${name}: ${ok ? 'ok' : 'FAIL'}\n`);
  return ok;
}

const fail = (detail) => ({ ok: false, detail });
const check = (cond, okDetail, failDetail) => (cond ? { ok: true, detail: okDetail } : fail(failDetail));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = pred();
    if (v) return v;
    await sleep(50);
  }
  return pred();
}
function withExchange(promise, re, mark) {
  return promise.catch((err) => {
    const e = typeof err === 'object' && err ? err : { message: String(err) };
    e.exchange = exchange(re, mark);
    throw e;
  });
}

/** Set-up, not an SDK call: the access-key (password) grant our provider uses; the SDK has no such login. */
async function passwordGrant(key) {
  const basic = Buffer.from(`${cfg.clientId}:${cfg.clientSecret}`).toString('base64');
  const body = new URLSearchParams({ grant_type: 'password', username: key.id, password: key.secret });
  const r = await fetch(`${host}/auth/token`, {
    method: 'POST', body: body.toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: `Basic ${basic}` },
  });
  const data = await r.json().catch(() => ({}));
  if (r.status !== 200 || !data.access_token) throw new Error(`password grant answered ${r.status}`);
  tokens.push(data.access_token, data.refresh_token, data.id_token);
  return data;
}

async function main() {
  const auth = CXoneAuth.instance;
  const user = CXoneUser.instance;
  const acd = ACDSessionManager.instance;
  auth.init({ cxoneHostname: host, clientId: cfg.clientId });

  // The SDK polls get-next-event and changes session only in the tab elected leader.
  CXoneLeaderElector.instance.start();
  await until(() => CXoneLeaderElector.instance.isLeader, 5000);

  const batches = []; // every batch of events the SDK's get-next adapter handled
  acd.onGetNextEvent.subscribe((events) => batches.push({ at: Date.now(), events }));
  const sessionChanges = [];
  acd.onAgentSessionChange.subscribe((c) => sessionChanges.push(c));
  const agentStates = [];
  acd.agentStateSubject.subscribe((s) => agentStates.push(s));

  const token = await passwordGrant(cfg.qaKey);
  const tokenResponse = { status: 200, data: token };
  let oidc = {};
  let verified = false;
  let config = {};

  await step('oidc-configuration', 'CXoneAuth.getOpenIDConfiguration', async (m) => {
    oidc = await withExchange(auth.getOpenIDConfiguration(host), /openid-configuration/, m);
    const missing = ['tokenEndpoint', 'jwksURI', 'authorizationEndpoint'].filter((k) => !oidc[k]);
    return check(!missing.length, `token_endpoint ${oidc.tokenEndpoint}, jwks_uri ${oidc.jwksURI}`,
      `document lacks ${missing.join(', ')}; ${exchange(/openid-configuration/, m)}`);
  });

  await step('id-token-verified', 'CXoneAuth.verifyJwt (RS256 against jwks_uri)', async (m) => {
    let header = {};
    try { header = JSON.parse(Buffer.from(token.id_token.split('.')[0], 'base64url').toString()); } catch { /* shown below */ }
    verified = await auth.verifyJwt(tokenResponse);
    return check(verified, `alg ${header.alg}, kid ${header.kid}`,
      `verifyJwt false: id_token header ${JSON.stringify(header)}; ${journal.slice(m).length ? exchange(/jwks|certs|keys/, m) : 'no JWKS request (no jwks_uri)'}`);
  });

  await step('id-token-claims', 'CXoneAuth.parseAndSaveAuthToken -> CXoneUser.getUserInfo', async () => {
    auth.parseAndSaveAuthToken(tokenResponse);
    const info = user.getUserInfo();
    const wanted = ['tenantId', 'icAgentId', 'icBUId', 'icClusterId', 'teamId', 'firstName', 'lastName', 'userName', 'userId', 'tenant'];
    const missing = wanted.filter((k) => info[k] === undefined || info[k] === null || info[k] === '');
    const sub = JSON.parse(Buffer.from(token.id_token.split('.')[1] ?? '', 'base64url').toString() || '{}').sub;
    const subOk = typeof sub === 'string' && /^user:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(sub);
    return check(!missing.length && subOk && String(info.icAgentId) === String(cfg.qaKey.agentId),
      `icAgentId ${info.icAgentId}, tenantId ${info.tenantId}, icBUId ${info.icBUId}, icClusterId ${info.icClusterId}, teamId ${info.teamId}, userId ${info.userId}`,
      `claims missing: ${missing.join(', ') || 'none'}; sub ${JSON.stringify(sub)}${subOk ? '' : ' (published: user:<uuid>; the SDK takes userId = sub minus "user:")'}; icAgentId ${info.icAgentId} (key's agent ${cfg.qaKey.agentId})`);
  });

  await step('discovery', 'CXoneAuth.getCXoneConfiguration', async (m) => {
    const info = user.getUserInfo();
    config = await withExchange(auth.getCXoneConfiguration(host, info.tenantId, Boolean(info.tenant)), /cxone-configuration/, m);
    const missing = ['acdApiBaseUri', 'cluster', 'acdDomain', 'domain'].filter((k) => !config[k]);
    // Names the SDK builds from discovery: whoami on api-{cluster}.{acdDomain}, UserHub's pages on
    // {area}.{uhDomain} and its API (user-management) on api-{area}.{domain}.
    if (config.cluster && config.acdDomain) hosts.set(`api-${config.cluster}.${config.acdDomain}`.toLowerCase(), host);
    if (config.area && config.userHubDomain) hosts.set(`${config.area}.${config.userHubDomain}`.toLowerCase(), host);
    if (config.area && config.domain) hosts.set(`api-${config.area}.${config.domain}`.toLowerCase(), host);
    return check(!missing.length, `api_endpoint ${config.acdApiBaseUri}, cluster ${config.cluster}, acdDomain ${config.acdDomain}`,
      `discovery lacks ${missing.map((k) => ({ acdApiBaseUri: 'api_endpoint' }[k] || k)).join(', ')}; ${exchange(/cxone-configuration/, m)}`);
  });
  if (!config.acdApiBaseUri) config = { ...config, acdApiBaseUri: host }; // so the steps below still show what they can
  auth.setCXoneConfig(config);
  user.initAuth(token.access_token, config); // as the SDK's own login does: AdminService gets token, config, user
  acd.initialize(token.access_token, config, user.getUserInfo());

  // ---- a session's life, as agent cfg.qaKey.agentId (the key's own agent)
  let startedId = '';
  let joinedAtStart = false; // start answered 409: the agent has a session, which the SDK's application then joins
  const started = await step('start-session', 'ACDSessionManager.startSession({stationId:"", stationPhoneNumber})', async (m) => {
    try {
      const r = await acd.startSession({ stationId: '', stationPhoneNumber: cfg.stationPhoneNumber });
      startedId = r.data.sessionId;
      return check(r.status === 202 && startedId, `${r.status} sessionId ${startedId}`, `answered ${r.status} (published: 202); ${exchange(/agent-sessions$/, m)}`);
    } catch (err) {
      const e = journal.slice(m).find((x) => /agent-sessions$/.test(x.url));
      if (e?.status !== 409) throw Object.assign(err ?? {}, { exchange: exchange(/agent-sessions$/, m) });
      // Published: 409 when the agent already has a session; the client then joins it.
      const r = await withExchange(acd.joinSession({}), /agent-sessions\/join/, m);
      startedId = r.data.sessionId;
      joinedAtStart = true;
      return check(r.status === 202 && startedId, `409 (agent ${cfg.qaKey.agentId} already has a session), then join: ${r.status} sessionId ${startedId}`,
        `409, then join answered ${r.status}; ${exchange(/agent-sessions\/join/, m)}`);
    }
  });

  await step('agent-settings', 'AdminService.getAgentSettings (the SDK calls it before polling)', async (m) => {
    // After a start the SDK asks by itself; without a session the harness asks through the same function.
    let e = started ? await until(() => journal.find((x) => /agent-settings/.test(x.url) && x.status), stepWait) : undefined;
    if (!e) {
      await AdminService.instance.getAgentSettings().catch(() => {});
      e = journal.slice(m).find((x) => /agent-settings/.test(x.url));
    }
    return check(e && e.status === 200, `${e?.status} for ${e?.url}`, exchange(/agent-settings/));
  }, longWait);

  const pollRe = /get-next-event/;
  await step('get-next-event-events', 'GetNextEventProvider (worker) -> CXoneGetNextAdapter', async () => {
    if (!started) return fail('no session started');
    const b = await until(() => batches.find((x) => x.events.some((ev) => ev.Type)), pollWait);
    const types = b ? b.events.map((ev) => ev.Type).join(', ') : '';
    // A session the SDK started opens with AgentSessionStart; a joined one with the agent's current state.
    const ok = b && (joinedAtStart || /AgentSessionStart/.test(types));
    return check(ok, `events: ${types}`,
      b ? `no AgentSessionStart among ${types}` : `no events within ${pollWait / 1000}s; ${exchange(pollRe)}`);
  }, longWait);

  await step('get-next-event-new-session-id', 'next poll uses the sessionId of the last answer', async () => {
    if (!started) return fail('no session started');
    const polls = () => journal.filter((x) => pollRe.test(x.url));
    const answered = await until(() => polls().find((x) => x.status === 200), pollWait);
    if (!answered) return fail(`no 200 answer; ${exchange(pollRe)}`);
    await until(() => answered.answer !== undefined, stepWait);
    const newId = answered.answerSessionId;
    if (!newId) return fail(`200 without a sessionId: ${answered.answer}`);
    const next = await until(() => polls().find((x) => x.at > answered.at && x.url !== answered.url), stepWait);
    const usesIt = next && next.url.includes(`/agent-sessions/${encodeURIComponent(newId)}/`);
    return check(newId !== startedId && usesIt, `answer's sessionId ${newId}; next poll ${next?.url}`,
      newId === startedId ? `the answer repeated the polled sessionId ${newId} (published: a new one each poll)`
        : `next poll ${next ? `went to ${next.url}` : 'not made'}`);
  }, longWait);

  await step('set-state', 'AgentStateService.setAgentState({state:"Available"})', async (m) => {
    if (!started) return fail('no session started');
    const r = await withExchange(AgentStateService.instance.setAgentState({ state: 'Available', reason: '' }), /\/state$/, m);
    return check(r.status === 202, `${r.status}`, `answered ${r.status} (published: 202); ${exchange(/\/state$/, m)}`);
  });

  await step('agent-state-event', 'agentStateSubject after set state', async () => {
    if (!started) return fail('no session started');
    const isAvailable = (x) => String(x?.currentState?.state ?? '').toLowerCase() === 'available';
    const s = await until(() => agentStates.find(isAvailable), pollWait);
    const seen = agentStates.map((x) => x?.currentState?.state).join(', ') || 'none';
    return check(s, `CurrentState ${s?.currentState?.state}`, `no AgentState event with CurrentState Available (states seen: ${seen}); ${exchange(pollRe)}`);
  }, longWait);

  await step('agent-states-directory', 'CXoneDirectory.getDirectoryData({entity:[agentList]}) -> cache/agentstate', async (m) => {
    const directory = new CXoneDirectory();
    const got = [];
    directory.directoryEvent.subscribe((d) => got.push(d));
    directory.getDirectoryData({ entity: [DirectoryEntities.AGENT_LIST], pollingOptions: { isPolling: false }, shouldFetchAllAgents: true });
    const d = await until(() => got[0], stepWait);
    const e = journal.slice(m).find((x) => /cache\/agentstate/i.test(x.url));
    const agents = d?.agentList?.data ?? [];
    const mine = agents.find((a) => String(a.agentId) === String(cfg.qaKey.agentId));
    return check(e?.status === 200 && agents.length > 0, `${e?.status}, ${agents.length} agents; own agent state ${mine?.agentStateName ?? mine?.agentState ?? '?'}`,
      `${agents.length} agents parsed (the SDK reads {"resultSet": {"lastPollTime", "agentState": [rows]}}, and keeps rows whose isActive is true/"True"); ${exchange(/cache\/agentstate/i, m)}`);
  }, longWait);

  await step('join-own-session', 'ACDSessionManager.joinSession() (asAgentId "")', async (m) => {
    const r = await withExchange(acd.joinSession({}), /agent-sessions\/join/, m);
    return check(r.status === 202 && r.data.sessionId, `${r.status} sessionId ${r.data.sessionId}`, `answered ${r.status}; ${exchange(/agent-sessions\/join/, m)}`);
  });

  await step('get-next-event-304', 'a poll with no events answers 304, no body; the SDK polls again', async () => {
    if (!started) return fail('no session started');
    const e = await until(() => journal.find((x) => pollRe.test(x.url) && x.status === 304), pollWait);
    if (!e) return fail(`no 304 within ${pollWait / 1000}s; ${exchange(pollRe)}`);
    // Done once the SDK has handled the 304, which it shows by polling again (with the same id: a 304
    // has no body). Ending the session before that loses the end: the SDK forgets its session id when
    // the end is answered, and a 304 it handles after that stops its polling with no AgentSessionEnd.
    const next = await until(() => journal.find((x) => pollRe.test(x.url) && x !== e && x.at >= e.answeredAt), stepWait);
    return check(!e.answer && next?.url === e.url,
      `304, no body, after holding the poll ${(e.answeredAt - e.at) / 1000}s; the SDK polled again with the same id`,
      e.answer ? `304 with a body: ${e.answer}` : `after the 304 the SDK ${next ? `polled ${next.url}` : 'did not poll again'}`);
  }, longWait);

  let endedId = '';
  await step('end-session', 'ACDSessionManager.endSession({forceLogoff,endContacts,ignorePersonalQueue})', async (m) => {
    endedId = acd.getSessionId();
    if (!endedId) return fail('no session to end (none started or joined)');
    const r = await withExchange(acd.endSession({ forceLogoff: false, endContacts: true, ignorePersonalQueue: false }), /agent-sessions\/[^/?]*$/, m);
    return check(r.status === 202, `${r.status}`, `answered ${r.status} (published: 202); ${exchange(/agent-sessions\/[^/?]*$/, m)}`);
  });

  await step('session-end-event', 'onAgentSessionChange SESSION_END after end', async () => {
    if (!started) return fail('no session started');
    const c = await until(() => sessionChanges.find((x) => x.status === AgentSessionStatus.SESSION_END), pollWait);
    return check(c, `SESSION_END (${c?.data?.type || 'AgentSessionEnd'})`, `no AgentSessionEnd; ${exchange(pollRe)}`);
  }, longWait);

  await step('get-next-event-409-after-end', 'ACDSessionManager.startGetNextEvents(ended id) -> 409 -> AgentSessionEnd', async (m) => {
    if (!endedId) return fail('no session to end');
    const before = sessionChanges.filter((x) => x.status === AgentSessionStatus.SESSION_END).length;
    acd.startGetNextEvents(endedId);
    const e = await until(() => journal.slice(m).find((x) => pollRe.test(x.url) && x.status), pollWait);
    const c = await until(() => sessionChanges.filter((x) => x.status === AgentSessionStatus.SESSION_END).length > before, stepWait);
    acd.terminateGetNextPolling();
    return check(e?.status === 409 && c, '409, SESSION_END', `${exchange(pollRe, m)}${c ? '' : '; no SESSION_END'}`);
  }, longWait);

  await step('start-session-after-end', 'ACDSessionManager.startSession(...) with no session -> 202', async (m) => {
    const r = await withExchange(acd.startSession({ stationId: '', stationPhoneNumber: cfg.stationPhoneNumber }), /agent-sessions$/, m);
    const id = r.data.sessionId;
    await sleep(200);
    acd.terminateGetNextPolling();
    await acd.endSession({ forceLogoff: false, endContacts: true, ignorePersonalQueue: false }).catch(() => {});
    return check(r.status === 202 && id, `${r.status} sessionId ${id}`, `answered ${r.status} (published: 202); ${exchange(/agent-sessions$/, m)}`);
  });

  // ---- join as another agent: impersonation is the token holder's
  await step('join-as-other-agent', `ACDSessionManager.joinSession({agentId:${cfg.otherAgentId}}) by a user who may impersonate`, async (m) => {
    localStorage.removeItem(StorageKeys.AGENT_SETTINGS);
    const r = await withExchange(acd.joinSession({ agentId: cfg.otherAgentId }), /agent-sessions\/join/, m);
    await sleep(200);
    acd.terminateGetNextPolling();
    return check(r.status === 202 && r.data.sessionId, `${r.status} sessionId ${r.data.sessionId}`, `answered ${r.status}; ${exchange(/agent-sessions\/join/, m)}`);
  });

  await step('join-as-other-refused', `joinSession({agentId:${cfg.otherAgentId}}) by a user who may not impersonate -> 403`, async (m) => {
    const other = await passwordGrant(cfg.noImpKey);
    acd.setAccessToken(other.access_token);
    try {
      const r = await acd.joinSession({ agentId: cfg.otherAgentId });
      acd.terminateGetNextPolling();
      return fail(`accepted with ${r.status} sessionId ${r.data.sessionId}; ${exchange(/agent-sessions\/join/, m)}`);
    } catch (err) {
      const e = journal.slice(m).find((x) => /agent-sessions\/join/.test(x.url));
      return check(e?.status === 403, `403${e?.answerHeaders?.icstatusdescription ? ` ${e.answerHeaders.icstatusdescription}` : ''}`, exchange(/agent-sessions\/join/, m));
    } finally {
      acd.setAccessToken(token.access_token);
    }
  });

  // ---- the token endpoint, as the SDK calls it. Without an OpenID configuration the SDK knows no
  // token_endpoint; the harness then leaves one in the page's storage, as an earlier page load would
  // have, so that these steps still show what the token endpoint answers.
  let noted = '';
  if (!oidc.tokenEndpoint) {
    localStorage.setItem(StorageKeys.OIDC_CONFIG, JSON.stringify({ tokenEndpoint: `${host}/auth/token` }));
    noted = ' (token_endpoint taken from storage: no OpenID configuration)';
  }
  await step('refresh-token', 'CXoneAuth.getRefreshToken (form body labelled application/json, no client credentials)', async (m) => {
    const seen = [];
    const sub = auth.onAuthStatusChange.subscribe((s) => seen.push(s));
    await auth.getRefreshToken();
    sub.unsubscribe();
    auth.terminateUtilWorker();
    const okStatus = seen.find((s) => s.status === AuthStatus.REFRESH_TOKEN_SUCCESS);
    const fresh = auth.getAuthToken().accessToken;
    if (fresh) tokens.push(fresh);
    return check(okStatus && fresh && fresh !== token.access_token, `new access token${noted}`, `${exchange(/token/, m)}${noted}`);
  });

  await step('token-exchange', 'CXoneAuth.getAccessTokenByToken (token exchange, then whoami)', async (m) => {
    const r = await withExchange(auth.getAccessTokenByToken({ accessToken: auth.getAuthToken().accessToken }), /./, m);
    if (r?.accessToken) tokens.push(r.accessToken);
    // Then, unawaited, UserHub's user record (a tenant with a `tenant` claim), on api-{area}.{domain}:
    // it must reach the sandbox (never a name outside it) and answer 200.
    const users = /\/user-management\/v1\/users\//;
    const uh = await until(() => journal.slice(m).find((e) => users.test(e.url) && (e.status || e.error)), stepWait);
    const userOk = !uh || (uh.status === 200 && uh.sentTo);
    return check(r?.accessToken && userOk, `new access token; calls: ${calls(m)}${noted}`,
      r?.accessToken ? `UserHub's user record: ${exchange(users, m)}` : 'no token');
  });
}

function printTable() {
  const head = { step: 'step', call: 'call', result: 'result', detail: 'detail' };
  const w = { step: 0, call: 0, result: 6 };
  for (const r of [head, ...rows]) { w.step = Math.max(w.step, r.step.length); w.call = Math.min(Math.max(w.call, r.call.length), 60); }
  const line = (r) => `| ${r.step.padEnd(w.step)} | ${r.call.padEnd(w.call)} | ${r.result.padEnd(w.result)} | ${r.detail.replace(/\|/g, '/')} |`;
  console.log(line(head));
  console.log(`|${'-'.repeat(w.step + 2)}|${'-'.repeat(w.call + 2)}|${'-'.repeat(w.result + 2)}|--------|`);
  for (const r of rows) console.log(line(r));
}

const timer = setTimeout(() => { rows.push({ step: 'harness', call: '-', result: 'FAIL', detail: 'timed out' }); finish(); }, (cfg.totalSeconds ?? 900) * 1000);
function finish() {
  clearTimeout(timer);
  printTable();
  if (cfg.reportFile) writeFileSync(cfg.reportFile, JSON.stringify({ rows, journal: journal.map((e) => ({ ...e, headers: undefined, body: e.body && redact(e.body), answer: e.answer && redact(e.answer) })) }, null, 1));
  const failed = rows.filter((r) => r.result !== 'ok');
  if (failed.length) console.log(`FAILED STEPS: ${failed.map((r) => r.step).join(', ')}`);
  process.exit(failed.length || !rows.length ? 1 : 0);
}
main().then(finish, (err) => { rows.push({ step: 'harness', call: '-', result: 'FAIL', detail: redact(err?.stack || err) }); finish(); });
