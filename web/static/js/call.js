// The inspector's call tab /calls/{invite_id}, opened by "Join call" in calls management.
// The staff token comes from sessionStorage (inherited from the opening tab) or #token=. The page
// joins /call with {jwt, invite_id}, receives the claimant's camera and voice and sends the
// inspector's microphone over one RTCPeerConnection, and drives the call: screenshots into a
// gallery, recording, the shared pointer, chat, camera-switch requests, and the end of the call.
// After a network change it reconnects and builds a new peer connection (callkit.js MediaKeeper).

import { adoptTokenFromFragment, api, ApiError, staffToken } from './auth.js';
import {
  ChatPanel, controlButton, emitAck, MediaKeeper, offerToServer, pageId, pictureRect, placePointer, showToggle,
  SOCKET_OPTIONS,
} from './callkit.js';
import { el, icon } from './dom.js';
import { browserLanguage, formatDateTime, formatDuration, t, useLanguage } from './i18n.js';
import { toast } from './toast.js';

const main = document.getElementById('main');
const inviteId = document.body.dataset.inviteId;
const CURSOR_INTERVAL_MS = 34; // the server relays at most 30 moves a second per sender
const LINK_MARGIN_MS = 30_000;
const ICE_FETCH_TIMEOUT_MS = 3_000;
const narrow = window.matchMedia('(max-width: 47.99rem)');

const state = {
  invite: null,
  kase: null,
  socket: null,
  pc: null,
  keeper: null,
  mediaWasUp: false, // media flowed once: a drop now shows "reconnecting"
  iceServers: null,
  iceFreshUntil: 0, // half the TURN credentials' lifetime
  mic: null,
  micBlocked: false,
  muted: false,
  me: null,
  participants: [],
  recording: false,
  recordingSince: 0,
  cursorOn: false,
  cursor: { x: 0.5, y: 0.5 },
  cursorSent: 0,
  cursorTimer: 0,
  switchRequest: null,
  shots: new Map(),
  claimantSeen: false,
  ended: false,
};

const ui = {};

function show(...children) {
  main.replaceChildren(...children);
}

function notice(kind, ...children) {
  return el('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    icon(kind === 'error' ? 'alert' : 'info'), el('div', {}, ...children));
}

function reason(error) {
  const code = error?.error?.code ?? error?.code ?? error?.message ?? '';
  const known = {
    no_claimant: 'call.no_claimant', media_unavailable: 'call.no_video', rate_limited: 'call.rate_limited',
    forbidden: 'error.forbidden', network_error: 'error.network',
  };
  return t(known[code] ?? 'error.generic');
}

function claimant() {
  return state.participants.find((p) => p.role === 'claimant') ?? null;
}

function claimantName() {
  return claimant()?.name || state.invite?.contact_name || t('call.claimant_fallback');
}

/** A whole-tab message: the call has ended, the invite is closed, the sign-in is missing. */
function messagePage(titleKey, body, { back = true, closeTab = false, ended = false } = {}) {
  document.title = t(titleKey);
  main.classList.remove('page-call');
  const heading = el('h1', { text: t(titleKey), tabindex: '-1' });
  const caseId = state.invite?.case_id;
  const actions = el('div', { class: 'message-actions' },
    closeTab ? el('button', { class: 'button button-primary', type: 'button', onclick: () => window.close() },
      t('call.close_tab')) : null,
    back && caseId ? el('a', { class: 'button', href: `/cases/${encodeURIComponent(caseId)}/calls` }, t('call.back')) : null);
  show(el('section', { class: `join-card join-message${ended ? ' join-message-ended' : ''}` },
    el('div', { class: 'join-message-icon', 'aria-hidden': 'true' }, icon('info')),
    heading, el('p', { class: 'lead', text: body }), actions));
  heading.focus();
}

// ---------- start ----------

async function boot() {
  adoptTokenFromFragment();
  await useLanguage(browserLanguage());
  if (!staffToken()) {
    messagePage('call.sign_in_title', t('call.sign_in_body'), { back: false });
    return;
  }
  try {
    state.invite = await api(`/invites/${encodeURIComponent(inviteId)}`);
    state.kase = await api(`/cases/${encodeURIComponent(state.invite.case_id)}`);
  } catch (error) {
    const status = error instanceof ApiError ? error.status : 0;
    if (status === 401) messagePage('call.sign_in_title', t('error.session'), { back: false });
    else if (status === 404) messagePage('call.not_found_title', t('call.not_found_body'), { back: false });
    else messagePage('call.load_failed_title', t(status === 0 ? 'error.network' : 'error.generic'), { back: false });
    return;
  }
  await useLanguage(state.kase.language || browserLanguage());
  if (state.invite.status === 'CLOSED') {
    messagePage('call.closed_title', t('call.closed_body'), { closeTab: true });
    return;
  }
  if (state.kase.access !== 'full') {
    messagePage('call.forbidden_title', t('error.forbidden'));
    return;
  }
  renderCall();
  await startMicrophone();
  loadGallery();
  connect();
}

async function startMicrophone() {
  try {
    state.mic = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
  } catch (error) {
    console.info('no microphone', error?.name);
    state.micBlocked = true;
    ui.mute.disabled = true;
    ui.banner.replaceChildren(notice('error', el('p', { text: t('call.mic_blocked', { name: claimantName() }) })));
  }
}

// ---------- the call view ----------

function renderCall() {
  const invite = state.invite;
  document.title = t('call.title_with', { name: invite.contact_name });
  main.classList.add('page-call');

  ui.video = el('video', { class: 'remote-video', autoplay: true, playsinline: true, 'aria-label': t('call.video') });
  ui.video.addEventListener('loadedmetadata', () => { placeMine(); stageChanged(); });
  ui.video.addEventListener('playing', stageChanged);
  ui.waiting = el('p', { class: 'stage-waiting', text: t('call.waiting_video') });
  ui.pointer = el('div', { class: 'remote-cursor own-cursor', hidden: true, 'aria-hidden': 'true' },
    el('span', { class: 'remote-cursor-dot' }), el('span', { class: 'remote-cursor-name', text: t('call.you') }));
  ui.status = el('p', { class: 'call-status', role: 'status', text: t('call.status.connecting') });
  ui.recording = el('p', { class: 'recording-indicator', hidden: true },
    el('span', { class: 'recording-dot', 'aria-hidden': 'true' }), el('span', { class: 'recording-text' }));
  ui.soundButton = el('button', { class: 'button button-primary sound-button', type: 'button', hidden: true,
    onclick: playSound }, t('call.play_sound'));
  ui.stage = el('div', { class: 'stage inspector-stage', 'aria-label': t('call.video') },
    ui.video, ui.waiting, ui.pointer,
    el('div', { class: 'stage-top' }, ui.status, ui.recording), ui.soundButton);
  ui.stage.addEventListener('pointermove', onPointer);
  ui.stage.addEventListener('pointerdown', onPointer);
  ui.stage.addEventListener('keydown', onStageKey);

  ui.gallery = el('ul', { class: 'gallery-list' });
  ui.galleryEmpty = el('p', { class: 'muted', text: t('call.screenshots_empty') });
  ui.galleryTitle = el('h2', { id: 'gallery-title', text: t('call.screenshots') });
  ui.galleryPanel = el('aside', { class: 'gallery-panel', id: 'gallery-panel', hidden: true, 'aria-labelledby': 'gallery-title' },
    el('div', { class: 'panel-head' }, ui.galleryTitle,
      el('button', { class: 'button button-small', type: 'button', 'aria-label': t('call.close_screenshots'),
        onclick: () => toggleGallery(false) }, icon('close'))),
    ui.galleryEmpty, ui.gallery);

  ui.chat = new ChatPanel({
    id: 'chat-panel',
    text: {
      title: t('call.chat'), empty: t('join.chat_empty'), message: t('join.chat_message'), send: t('join.send'),
      close: t('join.close_chat'), failed: t('join.chat_failed'), you: t('call.you'),
    },
    isMine: (m) => (m.from?.id ? m.from.id === state.me?.id
      : m.from?.role === 'inspector' && m.from?.name === state.me?.name),
    nameOf: (m) => m.from?.name || t(m.from?.role === 'claimant' ? 'call.claimant_fallback' : 'join.inspector_fallback'),
    send: async (text) => {
      const reply = await emitAck(state.socket, 'chat', { text });
      if (!reply.ok) throw new Error(reply.error?.code);
      return reply.message;
    },
    onUnread: () => {
      ui.chatBadge.hidden = false;
      ui.chatBadge.textContent = String(Number(ui.chatBadge.textContent || 0) + 1);
      ui.moreBadge.hidden = false;
    },
  });
  ui.chat.closeButton.addEventListener('click', () => toggleChat(false));
  ui.chat.element.classList.add('chat-in-panel');

  ui.switchButton = optionButton('flip', t('call.switch_camera'), askSwitch);
  ui.switchStatus = el('p', { class: 'option-status', role: 'status' });
  ui.cursorButton = optionButton('pointer', t('call.cursor'), () => setCursor(!state.cursorOn));
  ui.cursorButton.setAttribute('aria-pressed', 'false');
  ui.cursorHint = el('p', { class: 'option-status', hidden: true });
  ui.chatButton = optionButton('chat', t('call.chat'), () => toggleChat(!ui.chat.open));
  ui.chatButton.setAttribute('aria-expanded', 'false');
  ui.chatButton.setAttribute('aria-controls', 'chat-panel');
  ui.chatBadge = el('span', { class: 'option-badge', hidden: true, 'aria-hidden': 'true' });
  ui.chatButton.append(ui.chatBadge);
  ui.galleryButton = optionButton('picture', t('call.screenshots'), () => toggleGallery(ui.galleryPanel.hidden));
  ui.galleryButton.setAttribute('aria-expanded', 'false');
  ui.galleryButton.setAttribute('aria-controls', 'gallery-panel');
  ui.morePanel = el('aside', { class: 'side-panel', id: 'more-panel', hidden: true, 'aria-labelledby': 'more-title' },
    el('div', { class: 'panel-head' }, el('h2', { id: 'more-title', text: t('call.more') }),
      el('button', { class: 'button button-small', type: 'button', 'aria-label': t('call.close_more'),
        onclick: () => toggleMore(false) }, icon('close'))),
    el('ul', { class: 'option-list' },
      el('li', {}, ui.switchButton, ui.switchStatus),
      el('li', {}, ui.cursorButton, ui.cursorHint),
      el('li', {}, ui.chatButton),
      el('li', {}, ui.galleryButton)),
    ui.chat.element);

  ui.shot = controlButton('camera', t('call.take_screenshot'), takeScreenshot);
  ui.record = controlButton('record', t('call.start_recording'), toggleRecording);
  ui.record.setAttribute('aria-pressed', 'false');
  ui.mute = controlButton('mic', t('call.mute'), toggleMute);
  ui.mute.setAttribute('aria-pressed', 'false');
  ui.more = controlButton('more', t('call.more'), () => toggleMore(ui.morePanel.hidden));
  ui.more.setAttribute('aria-expanded', 'false');
  ui.more.setAttribute('aria-controls', 'more-panel');
  ui.moreBadge = el('span', { class: 'chat-badge', hidden: true, 'aria-hidden': 'true' });
  ui.more.append(ui.moreBadge);
  ui.end = controlButton('hangup', t('call.end_call'), confirmEnd, 'call-button-danger');
  const controls = el('div', { class: 'call-controls inspector-controls' }, ui.shot, ui.record, ui.mute, ui.more, ui.end);

  ui.who = el('p', { class: 'call-who' });
  ui.banner = el('div', { class: 'call-banner', 'aria-live': 'polite' });
  const head = el('header', { class: 'call-head' },
    el('div', {},
      el('h1', { text: t('call.heading', { name: invite.contact_name }) }),
      el('p', { class: 'call-meta', text: [t('call.case', { reference: state.kase.reference }), state.kase.title,
        invite.task_name ? t('call.task', { task: invite.task_name }) : t('call.documents')].filter(Boolean).join(' · ') })),
    ui.who);
  ui.lightbox = el('dialog', { class: 'dialog lightbox', 'aria-labelledby': 'lightbox-title' });
  ui.confirm = el('dialog', { class: 'dialog dialog-small', 'aria-labelledby': 'end-title' });
  ui.audio = el('audio', { class: 'remote-audio', autoplay: true });

  show(el('div', { class: 'call inspector-call' }, head, ui.banner,
    el('div', { class: 'call-area' }, ui.galleryPanel, ui.stage, ui.morePanel),
    controls, ui.audio, ui.lightbox, ui.confirm));
  window.addEventListener('resize', placeMine);
  updateControls();
}

function optionButton(iconName, label, onclick) {
  return el('button', { class: 'option-button', type: 'button', onclick }, icon(iconName), el('span', { text: label }));
}

function toggleMore(open) {
  ui.morePanel.hidden = !open;
  ui.more.setAttribute('aria-expanded', String(open));
  if (open) {
    ui.moreBadge.hidden = ui.chatBadge.hidden;
    ui.morePanel.querySelector('.option-button:not(:disabled)')?.focus();
  } else {
    ui.more.focus();
  }
  window.requestAnimationFrame(placeMine);
}

function toggleChat(open) {
  ui.chat.show(open);
  ui.chatButton.setAttribute('aria-expanded', String(open));
  if (open) {
    ui.chatBadge.hidden = true;
    ui.chatBadge.textContent = '';
    ui.moreBadge.hidden = true;
  } else {
    ui.chatButton.focus();
  }
}

function toggleGallery(open) {
  // On a narrow screen both panels overlay the picture: the gallery takes the place of the options.
  if (open && narrow.matches && !ui.morePanel.hidden) toggleMore(false);
  ui.galleryPanel.hidden = !open;
  ui.galleryButton.setAttribute('aria-expanded', String(open));
  if (!open) (ui.morePanel.hidden ? ui.more : ui.galleryButton).focus();
  window.requestAnimationFrame(placeMine);
}

/** What the controls may do now: captures need the claimant's picture, recording shows its state. */
function updateControls() {
  const present = Boolean(claimant());
  const live = Boolean(state.socket?.connected && state.me);
  ui.shot.disabled = !present || !live;
  ui.record.disabled = !live || (!present && !state.recording);
  ui.switchButton.disabled = !present || !live;
  showToggle(ui.record, state.recording, t(state.recording ? 'call.stop_recording' : 'call.start_recording'),
    state.recording ? 'stop' : 'record', 'call-button-recording');
  ui.recording.hidden = !state.recording;
  tickRecording();
  const c = claimant();
  if (!live) ui.who.textContent = '';
  else if (!c) ui.who.textContent = t('call.claimant_away', { name: claimantName() });
  else {
    const bits = [t(`call.facing.${c.facing === 'user' ? 'user' : 'environment'}`)];
    if (c.muted) bits.push(t('call.claimant_muted'));
    ui.who.textContent = t('call.claimant_here', { name: c.name, details: bits.join(', ') });
  }
  stageChanged();
}

function stageChanged() {
  const hasPicture = Boolean(ui.video.srcObject && ui.video.videoWidth);
  const present = Boolean(claimant());
  ui.waiting.hidden = hasPicture && present;
  if (present) state.claimantSeen = true;
  ui.waiting.textContent = t(state.claimantSeen && !present ? 'call.claimant_left' : 'call.waiting_video');
  ui.stage.classList.toggle('stage-away', !present);
}

function setStatus(key) {
  ui.status.textContent = t(key);
  ui.status.classList.toggle('call-status-live', key === 'call.status.live');
  ui.status.classList.toggle('call-status-reconnecting', key === 'call.status.reconnecting');
}

/** The status once joined: live or waiting, unless media that flowed before has dropped. */
function showLive() {
  if (!state.me) return;
  if (state.mediaWasUp && !state.keeper?.up) setStatus('call.status.reconnecting');
  else setStatus(claimant() ? 'call.status.live' : 'call.status.waiting');
}

function tickRecording() {
  window.clearTimeout(ui.recordingTimer);
  if (!state.recording) return;
  const seconds = (Date.now() - state.recordingSince) / 1000;
  ui.recording.querySelector('.recording-text').textContent = t('call.recording', { time: formatDuration(seconds) });
  ui.recordingTimer = window.setTimeout(tickRecording, 1000 - (Date.now() - state.recordingSince) % 1000);
}

// ---------- signalling and media ----------

function connect() {
  // eslint-disable-next-line no-undef
  const socket = io('/call', { ...SOCKET_OPTIONS, auth: { jwt: staffToken(), invite_id: inviteId, resume: pageId() } });
  state.socket = socket;
  state.keeper = new MediaKeeper(socket, negotiate, (up) => {
    if (state.ended) return;
    if (up) state.mediaWasUp = true;
    showLive();
  });
  socket.on('connect', onConnect);
  socket.on('connect_error', (error) => {
    const code = error?.data?.code;
    if (code === 'invite_closed') finish('closed');
    else if (code === 'token_expired' || code === 'invalid_token' || code === 'unauthorized') finish('session');
    else if (code === 'not_found' || code === 'forbidden') finish('forbidden');
    else setStatus('call.status.reconnecting');
  });
  socket.on('disconnect', () => {
    if (state.ended) return;
    state.keeper.lost();
    state.me = null;
    setStatus('call.status.reconnecting');
    updateControls();
  });
  socket.on('presence', (data) => {
    state.participants = data?.participants ?? [];
    updateControls();
    showLive();
  });
  socket.on('chat', (message) => ui.chat.add(message));
  socket.on('recording', onRecording);
  socket.on('capture', (data) => { if (data?.media?.kind === 'picture') addShot(data.media, true); });
  socket.on('camera_switch_result', onSwitchResult);
  socket.on('call_ended', (data) => finish('ended', data?.by));
}

async function onConnect() {
  try {
    const joined = await emitAck(state.socket, 'join');
    if (!joined.ok) {
      if (joined.error?.code === 'invite_closed') finish('closed');
      throw new Error(joined.error?.code ?? 'join refused');
    }
    state.me = joined.you;
    state.participants = joined.participants ?? [];
    ui.chat.replace(joined.chat);
    setRecording(Boolean(joined.recording?.active ?? joined.recording), null);
    updateControls();
    await negotiate();
    if (state.muted) await emitAck(state.socket, 'mute', { muted: true });
    if (state.cursorOn) sendCursor('show');
    showLive();
  } catch (error) {
    if (state.ended) return;
    console.info('join failed', error);
    setStatus('call.status.failed');
  }
}

async function iceServers() {
  // Reused while fresh: after a network change every round trip delays the picture.
  if (state.iceServers && Date.now() < state.iceFreshUntil) return state.iceServers;
  try {
    const reply = await api('/ice-servers', { signal: AbortSignal.timeout(ICE_FETCH_TIMEOUT_MS) });
    state.iceServers = reply.ice_servers ?? [];
    state.iceFreshUntil = Date.now() + (Number(reply.ttl_s) || 0) * 500;
  } catch (error) {
    // On a network that just came back: the last answer's TURN credentials are likely still valid.
    if (!state.iceServers) throw error;
  }
  return state.iceServers;
}

/** A new peer connection, offered to the server (on every connect, and when the media drops). */
async function negotiate(timeoutMs = undefined) {
  state.pc?.close();
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  state.pc = pc;
  state.keeper.watch(pc);
  pc.addTransceiver('video', { direction: 'recvonly' });
  const [track] = state.mic?.getAudioTracks() ?? [];
  if (track) pc.addTransceiver(track, { direction: 'sendrecv', streams: [state.mic] });
  else pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.addEventListener('track', (event) => {
    const stream = event.streams[0] ?? new MediaStream([event.track]);
    if (event.track.kind === 'video') {
      ui.video.srcObject = stream;
      ui.video.play().catch(() => {});
    } else {
      ui.audio.srcObject = stream;
      ui.audio.play().catch(() => { ui.soundButton.hidden = false; });
    }
  });
  await offerToServer(pc, state.socket, timeoutMs);
}

function playSound() {
  ui.audio.play().then(() => { ui.soundButton.hidden = true; }).catch(() => {});
}

// ---------- screenshots ----------

async function takeScreenshot() {
  ui.shot.disabled = true;
  ui.stage.classList.remove('stage-flash');
  try {
    const reply = await emitAck(state.socket, 'screenshot', {});
    if (!reply.ok) throw reply;
    void ui.stage.offsetWidth; // restart the flash animation
    ui.stage.classList.add('stage-flash');
    await addShot(reply.media, true);
    if (reply.media?.state === 'pending') toast(t('call.screenshot_pending'), 'info');
    else toast(t('call.screenshot_saved'), 'success');
  } catch (error) {
    toast(t('call.screenshot_failed', { reason: reason(error) }), 'error');
  } finally {
    updateControls();
  }
}

async function loadGallery() {
  try {
    const { items } = await api(`/invites/${encodeURIComponent(inviteId)}/media?kind=picture`);
    for (const item of items) await addShot(item, false);
  } catch (error) {
    console.info('gallery not loaded', error);
  }
}

async function signedLinks(id) {
  const links = await api(`/media/${encodeURIComponent(id)}/links`);
  return { ...links, expiresMs: new Date(links.expires_at).getTime() };
}

async function addShot(media, fresh) {
  if (!media?.id) return;
  const known = state.shots.get(media.id);
  if (known) {
    // A pending screenshot is announced again once the object store has it.
    if (known.pending && media.state !== 'pending') await showStored(known);
    return;
  }
  const shot = { id: media.id, at: media.captured_at ?? new Date().toISOString(), links: null,
    pending: media.state === 'pending', item: null };
  state.shots.set(media.id, shot);
  if (!shot.pending) {
    try {
      shot.links = await signedLinks(media.id);
    } catch {
      state.shots.delete(media.id);
      return;
    }
  }
  shot.item = el('li', { dataset: { mediaId: media.id } }, shotTile(shot));
  if (fresh) ui.gallery.prepend(shot.item);
  else ui.gallery.append(shot.item);
  ui.galleryEmpty.hidden = true;
  ui.galleryTitle.textContent = t('call.screenshots_count', { count: state.shots.size });
}

/** The gallery tile: the thumbnail to enlarge, or while the upload waits for storage, a note saying so. */
function shotTile(shot) {
  const when = formatDateTime(shot.at, true);
  const whenText = el('span', { class: 'gallery-when', text: when });
  if (shot.pending) {
    return el('div', { class: 'gallery-thumb gallery-pending', role: 'img',
      'aria-label': t('call.screenshot_pending_label', { when }) },
    el('span', { class: 'pending-note', text: t('media.pending') }),
    el('span', { class: 'pending-hint', text: t('media.pending_hint') }), whenText);
  }
  const img = el('img', { src: shot.links.thumbnail_url ?? shot.links.content_url, alt: '', width: '160', height: '120',
    decoding: 'async' });
  return el('button', { type: 'button', class: 'gallery-thumb', 'aria-label': t('call.screenshot_open', { when }),
    onclick: () => enlarge(shot) }, img, whenText);
}

async function showStored(shot) {
  try {
    shot.links = await signedLinks(shot.id);
  } catch {
    return; // stays marked pending; the gallery is loaded again on the next visit
  }
  shot.pending = false;
  shot.item?.replaceChildren(shotTile(shot));
}

async function enlarge(shot) {
  if (shot.links.expiresMs - Date.now() < LINK_MARGIN_MS) {
    try {
      shot.links = await signedLinks(shot.id);
    } catch (error) {
      toast(reason(error), 'error');
      return;
    }
  }
  const when = formatDateTime(shot.at, true);
  const close = el('button', { class: 'button', type: 'button', onclick: () => ui.lightbox.close() }, t('call.close'));
  ui.lightbox.replaceChildren(el('div', { class: 'dialog-form' },
    el('h2', { id: 'lightbox-title', text: t('call.screenshot_title', { when }) }),
    el('img', { class: 'lightbox-image', src: shot.links.content_url, alt: t('call.screenshot_alt', { when }) }),
    el('div', { class: 'dialog-actions' },
      el('a', { class: 'button', href: shot.links.content_url, target: '_blank', rel: 'noopener' }, t('call.open_full')),
      close)));
  ui.lightbox.showModal();
  close.focus();
}

// ---------- recording ----------

function setRecording(active, by) {
  const was = state.recording;
  state.recording = active;
  if (active && !was) state.recordingSince = Date.now();
  if (by && active !== was && by !== state.me?.name) {
    toast(t(active ? 'call.recording_started_by' : 'call.recording_stopped_by', { name: by }));
  }
}

function onRecording(data) {
  setRecording(Boolean(data?.active), data?.by ?? null);
  updateControls();
}

async function toggleRecording() {
  ui.record.disabled = true;
  const starting = !state.recording;
  try {
    const reply = await emitAck(state.socket, starting ? 'record_start' : 'record_stop', {});
    if (!reply.ok) throw reply;
    setRecording(starting, null);
    if (!starting && reply.media) {
      const duration = formatDuration(reply.media.duration_s ?? 0);
      if (reply.media.state === 'pending') toast(t('call.recording_pending', { duration }), 'info');
      else toast(t('call.recording_saved', { duration }), 'success');
    }
  } catch (error) {
    toast(t('call.recording_failed', { reason: reason(error) }), 'error');
  } finally {
    updateControls();
  }
}

// ---------- microphone ----------

async function toggleMute() {
  state.muted = !state.muted;
  for (const track of state.mic?.getAudioTracks() ?? []) track.enabled = !state.muted;
  showToggle(ui.mute, state.muted, t(state.muted ? 'call.unmute' : 'call.mute'), state.muted ? 'mic-off' : 'mic');
  if (state.socket?.connected) {
    try { await emitAck(state.socket, 'mute', { muted: state.muted }); } catch { /* presence catches up on reconnect */ }
  }
}

// ---------- camera switch ----------

async function askSwitch() {
  ui.switchButton.disabled = true;
  try {
    const reply = await emitAck(state.socket, 'camera_switch_request', {});
    if (!reply.ok) throw reply;
    state.switchRequest = reply.request_id;
    showSwitch('pending');
  } catch (error) {
    showSwitch('failed', reason(error));
  } finally {
    updateControls();
  }
}

function showSwitch(result, why = '') {
  ui.switchStatus.dataset.state = result;
  ui.switchStatus.textContent = t(`call.switch.${result}`, { name: claimantName(), reason: why });
}

function onSwitchResult(data) {
  if (!data?.request_id || data.request_id !== state.switchRequest) return;
  state.switchRequest = null;
  const result = ['accepted', 'declined', 'expired'].includes(data.result) ? data.result : 'expired';
  showSwitch(result);
  if (ui.morePanel.hidden) toast(t(`call.switch.${result}`, { name: claimantName() }), result === 'accepted' ? 'success' : 'info');
}

// ---------- the shared pointer ----------

function setCursor(on) {
  state.cursorOn = on;
  ui.cursorButton.setAttribute('aria-pressed', String(on));
  ui.cursorButton.classList.toggle('option-on', on);
  ui.cursorHint.hidden = !on;
  ui.cursorHint.textContent = t('call.cursor_hint', { name: claimantName() });
  ui.stage.classList.toggle('cursor-mode', on);
  if (on) {
    ui.stage.setAttribute('tabindex', '0');
    ui.stage.setAttribute('role', 'application');
    ui.stage.setAttribute('aria-roledescription', t('call.cursor_area'));
  } else {
    ui.stage.removeAttribute('tabindex');
    ui.stage.removeAttribute('role');
    ui.stage.removeAttribute('aria-roledescription');
  }
  ui.pointer.hidden = !on;
  placeMine();
  sendCursor(on ? 'show' : 'hide');
  if (on) scheduleMove();
}

function sendCursor(action) {
  if (!state.socket?.connected || !state.me) return;
  emitAck(state.socket, 'cursor', { action }).catch(() => {});
}

function placeMine() {
  if (!ui.pointer || ui.pointer.hidden) return;
  placePointer(ui.pointer, ui.video, ui.stage, state.cursor.x, state.cursor.y);
}

/** Send the latest position at most every CURSOR_INTERVAL_MS; the last one always goes out. */
function scheduleMove() {
  if (state.cursorTimer) return;
  const wait = Math.max(0, state.cursorSent + CURSOR_INTERVAL_MS - performance.now());
  state.cursorTimer = window.setTimeout(async () => {
    state.cursorTimer = 0;
    if (!state.cursorOn || !state.socket?.connected || !state.me) return;
    state.cursorSent = performance.now();
    const { x, y } = state.cursor;
    try {
      const reply = await emitAck(state.socket, 'cursor', { action: 'move', x, y });
      // Dropped by the server's rate limit: make sure the final spot still arrives.
      if (reply?.ok && reply.relayed === false) scheduleMove();
    } catch { /* the next move or a reconnect sends the spot again */ }
  }, wait);
}

function moveTo(x, y) {
  state.cursor = { x: Math.min(1, Math.max(0, x)), y: Math.min(1, Math.max(0, y)) };
  placeMine();
  scheduleMove();
}

function onPointer(event) {
  if (!state.cursorOn || event.target.closest('button')) return;
  if (event.type === 'pointermove' && event.pointerType !== 'mouse' && event.buttons === 0) return;
  const stage = ui.stage.getBoundingClientRect();
  const r = pictureRect(ui.video, ui.stage);
  const x = (event.clientX - stage.left - r.left) / r.w;
  const y = (event.clientY - stage.top - r.top) / r.h;
  if (x < 0 || x > 1 || y < 0 || y > 1 || !r.w) return;
  moveTo(x, y);
}

function onStageKey(event) {
  if (!state.cursorOn) return;
  const step = event.shiftKey ? 0.1 : 0.02;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  const move = moves[event.key];
  if (!move) return;
  event.preventDefault();
  moveTo(state.cursor.x + move[0], state.cursor.y + move[1]);
}

// ---------- the end ----------

function confirmEnd() {
  const end = el('button', { class: 'button button-danger', type: 'button', onclick: endCall }, t('call.end_call'));
  const cancel = el('button', { class: 'button', type: 'button', onclick: () => ui.confirm.close() }, t('common.cancel'));
  ui.confirm.replaceChildren(el('div', { class: 'dialog-form' },
    el('h2', { id: 'end-title', text: t('call.confirm_end_title') }),
    el('p', { class: 'dialog-lead', text: t('call.confirm_end_body', { name: claimantName() }) }),
    el('div', { class: 'dialog-actions' }, cancel, end)));
  ui.confirm.showModal();
  cancel.focus();
}

async function endCall() {
  ui.confirm.close();
  state.ended = true;
  try { await emitAck(state.socket, 'end_call', {}); } catch { /* the view ends anyway */ }
  finish('ended');
}

function finish(kind) {
  if (state.finished) return;
  state.ended = true;
  state.finished = true;
  window.removeEventListener('resize', placeMine);
  window.clearTimeout(ui.recordingTimer);
  for (const dialog of [ui.lightbox, ui.confirm]) if (dialog?.open) dialog.close();
  for (const track of state.mic?.getTracks() ?? []) track.stop();
  state.keeper?.stop();
  state.pc?.close();
  state.pc = null;
  state.socket?.off();
  state.socket?.disconnect();
  if (kind === 'closed') messagePage('call.closed_title', t('call.closed_body'), { closeTab: true });
  else if (kind === 'session') messagePage('call.sign_in_title', t('error.session'), { back: false });
  else if (kind === 'forbidden') messagePage('call.forbidden_title', t('error.forbidden'), { back: false });
  else messagePage('call.ended_title', t('call.ended_body'), { closeTab: true, ended: true });
}

boot().catch((error) => {
  console.error(error);
  show(notice('error', el('p', { text: t('error.generic') })));
});
