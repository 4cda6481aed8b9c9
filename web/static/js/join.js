// The claimant's page /join/{token}: what the call is about, then the call itself on a phone.
// The link token in the path is the credential; when the portal asks for it, the page first takes the
// SMS security code and keeps the grant it earns in sessionStorage, sending it along with the token
// (header X-Claimcam-Grant to the API, `grant` in the /call auth). Media: getUserMedia (rear camera first),
// one RTCPeerConnection to the server (ICE servers from the API, no trickle: the offer is sent once
// gathering is complete), signalling over Socket.IO /call. After a network change the page reconnects
// and builds a new peer connection for the same camera stream (callkit.js MediaKeeper), showing
// "Reconnecting…" until media flows again. Every text comes from the i18n catalogues.

import {
  ChatPanel, controlButton, emitAck, MediaKeeper, offerToServer, pageId, placePointer, showToggle, SOCKET_OPTIONS,
} from './callkit.js';
import { el, icon } from './dom.js';
import { browserLanguage, t, useLanguage } from './i18n.js';

const main = document.getElementById('main');
const token = decodeURIComponent(location.pathname.split('/')[2] ?? '');
const GRANT_KEY = `claimcam.grant.${token}`;
const CODE_SENT_KEY = `claimcam.code_sent.${token}`;
const CODE_VALID_MS = 10 * 60_000;
const CODE_DIGITS = 6;
const ICE_FETCH_TIMEOUT_MS = 3_000;

const state = {
  info: null,
  stream: null,
  facing: 'environment',
  muted: false,
  socket: null,
  pc: null,
  keeper: null,
  iceServers: null,
  iceFreshUntil: 0, // half the TURN credentials' lifetime
  wasLive: false, // media flowed once: a drop now shows "Reconnecting…"
  videoSender: null,
  ended: false,
  finished: false,
  switching: false,
  pendingRequest: null,
};

const ui = {};

// sessionStorage throws in some private modes: the page then simply asks for a code again.
function stored(key) {
  try { return sessionStorage.getItem(key); } catch { return null; }
}

function store(key, value) {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch { /* see stored() */ }
}

function api(path, { method = 'GET', body, signal } = {}) {
  const headers = {};
  const grant = stored(GRANT_KEY);
  if (grant) headers['X-Claimcam-Grant'] = grant;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return fetch(`/api/v1/join/${encodeURIComponent(token)}${path}`, {
    method, headers, signal, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
  });
}

function show(...children) {
  main.replaceChildren(...children);
}

function notice(kind, ...children) {
  return el('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    icon(kind === 'error' ? 'alert' : 'info'), el('div', {}, ...children));
}

/** A full-page message: the closed link, the unknown link, the ended call. */
function messagePage(kind, titleKey, bodyKey, action = null) {
  stopCountdown();
  document.title = t(titleKey);
  const heading = el('h1', { text: t(titleKey), tabindex: '-1' });
  show(el('section', { class: `join-card join-message join-message-${kind}` },
    el('div', { class: 'join-message-icon', 'aria-hidden': 'true' }, icon(kind === 'ended' ? 'info' : 'alert')),
    heading, el('p', { class: 'lead', text: t(bodyKey) }), action));
  heading.focus();
}

// ---------- before joining ----------

async function boot() {
  await useLanguage(browserLanguage());
  let resp;
  try {
    resp = await api('');
  } catch {
    resp = null;
  }
  if (resp && resp.status === 410) return messagePage('closed', 'join.closed_title', 'join.closed_body');
  if (resp && resp.status === 404) return messagePage('closed', 'join.unknown_title', 'join.unknown_body');
  if (!resp || !resp.ok) {
    return show(el('section', { class: 'join-card' },
      notice('error', el('p', { text: t('join.load_failed') })),
      el('button', { class: 'button button-primary', type: 'button', text: t('join.try_again'), onclick: boot })));
  }
  state.info = await resp.json();
  await useLanguage(state.info.language || browserLanguage());
  // Without a valid grant the API reveals only how to ask for the code, not what the call is about.
  if (state.info.sms_code_required && !state.info.invite_id) {
    store(GRANT_KEY, null);
    renderCodeStep();
    return;
  }
  renderIntro();
}

// ---------- the SMS security code ----------

function waitText(seconds) {
  return seconds > 90 ? `${Math.ceil(seconds / 60)} min` : `${seconds} s`;
}

function retryAfter(resp, body) {
  const seconds = Number(resp.headers.get('Retry-After') ?? body?.error?.retry_after_s);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds) : 60;
}

async function bodyOf(resp) {
  try { return await resp.json(); } catch { return {}; }
}

function codeProblem(text) {
  if (text) ui.codeStatus.replaceChildren(notice('error', el('p', { text })));
  else ui.codeStatus.replaceChildren();
  if (text) ui.codeInput.setAttribute('aria-invalid', 'true');
  else ui.codeInput.removeAttribute('aria-invalid');
}

function codeProgress(key) {
  ui.codeStatus.replaceChildren(el('p', { class: 'loading', text: t(key) }));
  ui.codeInput.removeAttribute('aria-invalid');
}

function stopCountdown() {
  window.clearInterval(ui.countdown);
  ui.countdown = null;
}

/** "Send a new code" stays disabled, counting down, until the server accepts another one. */
function startCountdown(seconds) {
  stopCountdown();
  const until = Date.now() + seconds * 1000;
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      stopCountdown();
      ui.resend.disabled = false;
      ui.resend.textContent = t('join.code_resend');
      return;
    }
    ui.resend.disabled = true;
    ui.resend.textContent = t('join.code_resend_wait', { time: waitText(left) });
  };
  tick();
  ui.countdown = window.setInterval(tick, 1000);
}

/** The phone hint ("•••• 67") kept on one line. */
function phoneHint(hint) {
  return String(hint || '').replace(/ /g, '\u00a0');
}

function renderCodeStep() {
  const info = state.info;
  const phone = phoneHint(info.phone_hint);
  document.title = t('join.code_title');
  ui.codeInput = el('input', {
    id: 'code-input', class: 'code-input', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9]*', maxlength: String(CODE_DIGITS), required: true, spellcheck: 'false',
    'aria-describedby': 'code-sent code-status',
  });
  ui.codeSent = el('p', { id: 'code-sent', class: 'code-sent' });
  ui.codeStatus = el('div', { id: 'code-status', class: 'join-status', 'aria-live': 'polite' });
  ui.codeSubmit = el('button', { class: 'button button-primary button-large', type: 'submit', text: t('join.code_continue') });
  ui.resend = el('button', { class: 'button code-resend', type: 'button', text: t('join.code_resend'), onclick: () => sendCode() });
  const form = el('form', { class: 'code-form', novalidate: true, onsubmit: verifyCode },
    el('label', { class: 'code-label', for: 'code-input', text: t('join.code_label') }),
    ui.codeInput, ui.codeStatus, ui.codeSubmit);
  show(el('section', { class: 'join-card join-code' },
    el('h1', { text: t('join.code_heading') }),
    el('p', { class: 'lead', text: t('join.code_lead', { company: info.company }) }),
    ui.codeSent, form, ui.resend));
  ui.codeInput.focus();
  // A reload must not replace a code that is still on its way or valid: send only when none is.
  const sentAt = Number(stored(CODE_SENT_KEY));
  const age = Date.now() - sentAt;
  if (sentAt && age >= 0 && age < CODE_VALID_MS) {
    ui.codeSent.textContent = t('join.code_sent', { phone });
    startCountdown(Math.max(0, Math.ceil((60_000 - age) / 1000)));
  } else {
    sendCode();
  }
}

async function sendCode() {
  const phone = phoneHint(state.info.phone_hint);
  stopCountdown();
  ui.resend.disabled = true;
  codeProgress('join.code_sending');
  let resp = null;
  try {
    resp = await api('/code', { method: 'POST' });
  } catch { /* resp stays null */ }
  if (resp?.status === 410) return messagePage('closed', 'join.closed_title', 'join.closed_body');
  if (resp?.status === 404) return messagePage('closed', 'join.unknown_title', 'join.unknown_body');
  if (resp?.status === 409) return boot(); // the portal no longer asks for a code
  const body = resp ? await bodyOf(resp) : {};
  if (resp?.status === 202) {
    store(CODE_SENT_KEY, String(Date.now()));
    ui.codeSent.textContent = t('join.code_sent', { phone: body.phone_hint ? phoneHint(body.phone_hint) : phone });
    ui.codeInput.value = '';
    codeProblem(null);
    startCountdown(Number(body.resend_after_s) || 60);
    return;
  }
  if (resp?.status === 429) {
    const wait = retryAfter(resp, body);
    // Asked again too soon (another tab, a reload): the code already sent is the one to use.
    ui.codeSent.textContent = t('join.code_sent', { phone });
    codeProblem(wait > 60 ? t('join.code_wait', { time: waitText(wait) }) : null);
    startCountdown(wait);
    return;
  }
  codeProblem(t(body?.error?.code === 'no_phone_number' ? 'join.code_no_phone' : 'join.code_send_failed'));
  ui.resend.disabled = false;
}

async function verifyCode(event) {
  event.preventDefault();
  const code = ui.codeInput.value.replace(/[\s-]/g, '');
  if (!new RegExp(`^[0-9]{${CODE_DIGITS}}$`).test(code)) {
    codeProblem(t('join.code_invalid'));
    ui.codeInput.focus();
    return;
  }
  ui.codeSubmit.disabled = true;
  codeProgress('join.code_checking');
  let resp = null;
  try {
    resp = await api('/code/verify', { method: 'POST', body: { code } });
  } catch { /* resp stays null */ }
  ui.codeSubmit.disabled = false;
  if (resp?.status === 410) return messagePage('closed', 'join.closed_title', 'join.closed_body');
  if (resp?.status === 404) return messagePage('closed', 'join.unknown_title', 'join.unknown_body');
  if (resp?.status === 409) return boot();
  const body = resp ? await bodyOf(resp) : {};
  if (resp?.ok && body.grant) {
    store(GRANT_KEY, body.grant);
    store(CODE_SENT_KEY, null);
    stopCountdown();
    return boot();
  }
  const error = body?.error ?? {};
  if (error.code === 'code_wrong') codeProblem(t('join.code_wrong', { attempts: error.attempts_left }));
  else if (error.code === 'code_attempts_exhausted') {
    codeProblem(t('join.code_exhausted'));
    startCountdown(retryAfter(resp, body));
  } else if (error.code === 'code_expired') codeProblem(t('join.code_expired'));
  else if (resp?.status === 422) codeProblem(t('join.code_invalid'));
  else codeProblem(t('join.code_check_failed'));
  ui.codeInput.select();
  ui.codeInput.focus();
}

function renderIntro(problem = null) {
  const info = state.info;
  document.title = t('join.title');
  const facts = el('dl', { class: 'join-facts' },
    el('div', {}, el('dt', { text: t('join.case') }), el('dd', { text: info.case_reference })),
    el('div', {}, el('dt', { text: t('join.company') }), el('dd', { text: info.company })),
    info.inspector ? el('div', {}, el('dt', { text: t('join.inspector') }), el('dd', { text: info.inspector })) : null);
  const button = el('button', { class: 'button button-primary button-large', type: 'button', onclick: joinCall },
    icon('join'), t('join.join'));
  ui.introStatus = el('div', { class: 'join-status', 'aria-live': 'polite' },
    problem ? notice('error', el('p', { text: problem })) : null);
  show(el('section', { class: 'join-card' },
    el('h1', { text: t('join.heading') }),
    el('p', { class: 'lead', text: t('join.lead', { company: info.company }) }),
    facts, button,
    el('p', { class: 'join-hint', text: t('join.permission_hint') }),
    ui.introStatus));
  ui.joinButton = button;
  if (problem) button.focus();
}

function mediaProblem(error) {
  const name = error?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return t('join.permission_denied');
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return t('join.no_camera');
  return t('join.media_failed');
}

async function cameraStream(facing, audio) {
  return navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: facing }, width: { ideal: 1280 }, height: { ideal: 720 } },
    audio,
  });
}

async function joinCall() {
  ui.joinButton.disabled = true;
  ui.introStatus.replaceChildren(el('p', { class: 'loading', text: t('join.starting') }));
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error('no mediaDevices'), { name: 'NotFoundError' });
    state.stream = await cameraStream(state.facing, true);
  } catch (error) {
    renderIntro(mediaProblem(error));
    return;
  }
  renderCall();
  connectSignalling();
}

// ---------- the call view ----------

function renderCall() {
  document.title = t('join.title');
  ui.video = el('video', { class: 'preview', autoplay: true, muted: true, playsinline: true, 'aria-label': t('join.preview') });
  ui.video.muted = true;
  ui.video.srcObject = state.stream;
  ui.video.addEventListener('loadedmetadata', placeCursor);
  ui.remoteAudio = el('audio', { autoplay: true, class: 'remote-audio' });
  ui.cursor = el('div', { class: 'remote-cursor', hidden: true, role: 'img', 'aria-label': t('join.pointer', { name: '' }) },
    el('span', { class: 'remote-cursor-dot' }), el('span', { class: 'remote-cursor-name' }));
  ui.recording = el('p', { class: 'recording-indicator', hidden: true, role: 'status' },
    el('span', { class: 'recording-dot', 'aria-hidden': 'true' }), t('join.recording'));
  ui.status = el('p', { class: 'call-status', role: 'status', text: t('join.connecting') });
  ui.stage = el('div', { class: 'stage' }, ui.video, ui.cursor, el('div', { class: 'stage-top' }, ui.status, ui.recording));

  ui.mute = controlButton('mic', t('join.mute'), toggleMute);
  ui.mute.setAttribute('aria-pressed', 'false');
  ui.chatButton = controlButton('chat', t('join.chat'), toggleChat);
  ui.chatButton.setAttribute('aria-expanded', 'false');
  ui.chatButton.setAttribute('aria-controls', 'chat-panel');
  ui.chatBadge = el('span', { class: 'chat-badge', hidden: true, 'aria-hidden': 'true' });
  ui.chatButton.append(ui.chatBadge);
  ui.switchButton = controlButton('flip', t('join.switch_camera'), () => switchCamera());
  const controls = el('div', { class: 'call-controls' },
    ui.switchButton, ui.mute, ui.chatButton,
    controlButton('hangup', t('join.end_call'), endCall, 'call-button-danger'));

  ui.chat = new ChatPanel({
    id: 'chat-panel',
    text: {
      title: t('join.chat'), empty: t('join.chat_empty'), message: t('join.chat_message'), send: t('join.send'),
      close: t('join.close_chat'), failed: t('join.chat_failed'), you: t('join.you'),
    },
    isMine: (m) => m.from?.role === 'claimant',
    nameOf: (m) => m.from?.name || t('join.inspector_fallback'),
    send: async (text) => {
      const reply = await ack('chat', { text });
      if (!reply.ok) throw new Error(reply.error?.code);
      return reply.message;
    },
    onUnread: () => {
      ui.chatBadge.hidden = false;
      ui.chatBadge.textContent = String(Number(ui.chatBadge.textContent || 0) + 1);
    },
  });
  ui.chat.closeButton.addEventListener('click', toggleChat);

  ui.dialog = el('dialog', { class: 'dialog dialog-small', 'aria-labelledby': 'switch-title' });
  show(el('div', { class: 'call' }, ui.stage, controls, ui.chat.element, ui.remoteAudio, ui.dialog));
  main.classList.add('page-call');
  window.addEventListener('resize', placeCursor);
}

function setStatus(key) {
  if (ui.status) {
    ui.status.textContent = t(key);
    ui.status.classList.toggle('call-status-live', key === 'join.connected');
    ui.status.classList.toggle('call-status-reconnecting', key === 'join.reconnecting');
  }
}

// ---------- signalling and media ----------

function ack(event, payload) {
  return emitAck(state.socket, event, payload);
}

function connectSignalling() {
  const grant = stored(GRANT_KEY);
  const resume = pageId();
  // eslint-disable-next-line no-undef
  const socket = io('/call', { ...SOCKET_OPTIONS, auth: grant ? { token, grant, resume } : { token, resume } });
  state.socket = socket;
  state.keeper = new MediaKeeper(socket, negotiate, (up) => {
    if (up) state.wasLive = true;
    if (up) setStatus('join.connected');
    else if (state.wasLive && !state.ended) setStatus('join.reconnecting');
  });
  socket.on('connect', onConnect);
  socket.on('connect_error', (error) => {
    const code = error?.data?.code;
    if (code === 'invite_closed') finish('closed');
    else if (code === 'not_found') finish('unknown');
    else if (code === 'sms_code_required') finish('code');
    else setStatus(state.wasLive ? 'join.reconnecting' : 'join.connecting');
  });
  socket.on('disconnect', () => {
    if (state.ended) return;
    state.keeper.lost();
    setStatus(state.wasLive ? 'join.reconnecting' : 'join.connecting');
  });
  socket.on('chat', (message) => ui.chat.add(message));
  socket.on('cursor', onCursor);
  socket.on('recording', (data) => { ui.recording.hidden = !data?.active; });
  socket.on('camera_switch_requested', askSwitch);
  socket.on('camera_switch_result', (data) => {
    if (state.pendingRequest === data?.request_id && data?.result === 'expired') closeDialog();
  });
  socket.on('call_ended', () => finish('ended'));
}

async function onConnect() {
  try {
    const joined = await ack('join');
    if (!joined.ok) throw new Error(joined.error?.code ?? 'join refused');
    ui.chat.replace(joined.chat);
    ui.recording.hidden = !joined.recording?.active && joined.recording !== true;
    await negotiate();
    if (state.muted) await ack('mute', { muted: true });
    if (state.facing !== 'environment') await ack('camera_facing', { facing: state.facing });
  } catch (error) {
    if (state.ended) return;
    console.info('join failed', error);
    // After a network change the keeper or the socket's next connect tries again.
    if (!state.wasLive) setStatus('join.connect_failed');
  }
}

async function iceServers() {
  // Reused while fresh: after a network change every round trip delays the picture.
  if (state.iceServers && Date.now() < state.iceFreshUntil) return state.iceServers;
  let resp;
  try {
    resp = await api('/ice-servers', { signal: AbortSignal.timeout(ICE_FETCH_TIMEOUT_MS) });
  } catch (error) {
    // On a network that just came back: the last answer's TURN credentials are likely still valid.
    if (state.iceServers) return state.iceServers;
    throw error;
  }
  if (resp.status === 410) { finish('closed'); throw new Error('closed'); }
  if (resp.status === 403) { finish('code'); throw new Error('security code needed'); }
  if (!resp.ok) throw new Error(`ice-servers: HTTP ${resp.status}`);
  const reply = await resp.json();
  state.iceServers = reply.ice_servers ?? [];
  state.iceFreshUntil = Date.now() + (Number(reply.ttl_s) || 0) * 500;
  return state.iceServers;
}

/** A new peer connection for the same camera stream, offered to the server (first join and every reconnect). */
async function negotiate(timeoutMs = undefined) {
  state.pc?.close();
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  state.pc = pc;
  state.keeper.watch(pc);
  const [video] = state.stream.getVideoTracks();
  const [audio] = state.stream.getAudioTracks();
  state.videoSender = pc.addTransceiver(video, { direction: 'sendonly', streams: [state.stream] }).sender;
  if (audio) pc.addTransceiver(audio, { direction: 'sendrecv', streams: [state.stream] });
  else pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addEventListener('track', (event) => {
    if (event.track.kind !== 'audio') return;
    ui.remoteAudio.srcObject = event.streams[0] ?? new MediaStream([event.track]);
    ui.remoteAudio.play().catch(() => {});
  });
  await offerToServer(pc, state.socket, timeoutMs);
}

// ---------- controls ----------

async function switchCamera() {
  if (state.switching || !state.stream) return false;
  state.switching = true;
  ui.switchButton.disabled = true;
  const facing = state.facing === 'environment' ? 'user' : 'environment';
  const [old] = state.stream.getVideoTracks();
  try {
    old?.stop(); // phones often cannot open both cameras at once
    const fresh = (await cameraStream(facing, false)).getVideoTracks()[0];
    if (old) state.stream.removeTrack(old);
    state.stream.addTrack(fresh);
    if (state.videoSender) await state.videoSender.replaceTrack(fresh);
    ui.video.srcObject = state.stream;
    state.facing = facing;
    ui.stage.dataset.facing = facing;
    placeCursor();
    if (state.socket?.connected) await ack('camera_facing', { facing });
    return true;
  } catch (error) {
    console.info('camera switch failed', error);
    return false;
  } finally {
    state.switching = false;
    ui.switchButton.disabled = false;
  }
}

async function toggleMute() {
  state.muted = !state.muted;
  for (const track of state.stream?.getAudioTracks() ?? []) track.enabled = !state.muted;
  showToggle(ui.mute, state.muted, t(state.muted ? 'join.unmute' : 'join.mute'), state.muted ? 'mic-off' : 'mic');
  if (state.socket?.connected) {
    try { await ack('mute', { muted: state.muted }); } catch { /* presence catches up on reconnect */ }
  }
}

function toggleChat() {
  const open = !ui.chat.open;
  ui.chat.show(open);
  ui.chatButton.setAttribute('aria-expanded', String(open));
  if (open) {
    ui.chatBadge.hidden = true;
    ui.chatBadge.textContent = '';
  } else {
    ui.chatButton.focus();
  }
}

async function endCall() {
  state.ended = true;
  try { await ack('end_call'); } catch { /* the view ends anyway */ }
  finish('ended');
}

// ---------- what the inspector does ----------

/** The rectangle the video picture occupies inside the element (object-fit: contain). */
function placeCursor() {
  if (!ui.cursor || ui.cursor.hidden) return;
  // The front camera's preview is mirrored, so the spot the inspector points at is too.
  const x = Number(ui.cursor.dataset.x);
  placePointer(ui.cursor, ui.video, ui.stage, state.facing === 'user' ? 1 - x : x, Number(ui.cursor.dataset.y));
}

function onCursor(data) {
  if (!data) return;
  const name = data.name || t('join.inspector_fallback');
  ui.cursor.querySelector('.remote-cursor-name').textContent = name;
  ui.cursor.setAttribute('aria-label', t('join.pointer', { name }));
  if (data.action === 'hide') {
    ui.cursor.hidden = true;
    return;
  }
  // "show" carries no position: the pointer appears with the first "move" (or at its last spot).
  if (data.action === 'move') {
    const x = Number(data.x);
    const y = Number(data.y);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    ui.cursor.dataset.x = String(Math.min(1, Math.max(0, x)));
    ui.cursor.dataset.y = String(Math.min(1, Math.max(0, y)));
  }
  if (ui.cursor.dataset.x === undefined) return;
  ui.cursor.hidden = false;
  placeCursor();
}

function closeDialog() {
  state.pendingRequest = null;
  window.clearTimeout(ui.dialogTimer);
  if (ui.dialog.open) ui.dialog.close();
}

function askSwitch(data) {
  if (!data?.request_id) return;
  state.pendingRequest = data.request_id;
  const answer = async (allow) => {
    const requestId = state.pendingRequest;
    closeDialog();
    if (!requestId) return;
    try {
      const reply = await ack('camera_switch_answer', { request_id: requestId, allow });
      if (allow && reply.ok) await switchCamera();
    } catch (error) {
      console.info('camera switch answer failed', error);
    }
  };
  const allow = el('button', { class: 'button button-primary', type: 'button', onclick: () => answer(true) }, t('join.allow'));
  ui.dialog.replaceChildren(el('div', { class: 'dialog-form' },
    el('h2', { id: 'switch-title', text: t('join.switch_title') }),
    el('p', { class: 'dialog-lead', text: t('join.switch_body', { name: data.by || t('join.inspector_fallback') }) }),
    el('div', { class: 'dialog-actions' },
      el('button', { class: 'button', type: 'button', onclick: () => answer(false) }, t('join.decline')), allow)));
  ui.dialog.addEventListener('cancel', (event) => { event.preventDefault(); }, { once: true });
  if (!ui.dialog.open) ui.dialog.showModal();
  allow.focus();
  window.clearTimeout(ui.dialogTimer);
  ui.dialogTimer = window.setTimeout(closeDialog, Math.max(1, Number(data.expires_in_s) || 30) * 1000);
}

// ---------- the end ----------

function finish(kind) {
  state.ended = true;
  if (state.finished) return;
  state.finished = true;
  window.removeEventListener('resize', placeCursor);
  closeDialogQuietly();
  for (const track of state.stream?.getTracks() ?? []) track.stop();
  state.keeper?.stop();
  state.pc?.close();
  state.pc = null;
  state.socket?.off();
  state.socket?.disconnect();
  main.classList.remove('page-call');
  if (kind === 'code') {
    // The grant expired mid-way: start over at the code step, ready to join again.
    store(GRANT_KEY, null);
    Object.assign(state, {
      ended: false, finished: false, socket: null, stream: null, videoSender: null, keeper: null, wasLive: false,
    });
    boot();
  } else if (kind === 'closed') messagePage('closed', 'join.closed_title', 'join.closed_body');
  else if (kind === 'unknown') messagePage('closed', 'join.unknown_title', 'join.unknown_body');
  else messagePage('ended', 'join.ended_title', 'join.ended_body');
}

function closeDialogQuietly() {
  if (ui.dialog) closeDialog();
}

boot().catch((error) => {
  console.error(error);
  show(notice('error', el('p', { text: t('join.load_failed') })));
});
