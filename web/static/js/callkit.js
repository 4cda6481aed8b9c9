// What the two call pages (the claimant's /join/{token} and the inspector's /calls/{id}) share:
// the big control buttons, the chat panel, the geometry of the video picture, the WebRTC offer,
// which leaves once ICE gathering is complete (the server does not trickle), and the reconnecting
// of media and signalling after a network change.

import { el, icon } from './dom.js';

export const ACK_TIMEOUT_MS = 15_000;
const GATHER_TIMEOUT_MS = 5_000;
const GATHER_QUIET_MS = 200;
// A peer connection "disconnected" this long is rebuilt (aiortc cannot restart ICE): long enough for
// a blip to heal by itself, short next to the 3 s in which a claimant's video should be back.
const RESTART_AFTER_MS = 2_000;
// A new peer connection not connected by then is rebuilt again.
const CONNECT_TIMEOUT_MS = 10_000;
// A renegotiation without an answer by then means the socket is as dead as the media.
const REOFFER_TIMEOUT_MS = 4_000;
// When the media stalls the socket is asked to answer within this; if it cannot, it is reconnected
// now instead of after Engine.IO's ping timeout, e.g. when the phone's address changed. Short: it is
// asked only when the media has stopped already, so a slow answer costs little to be wrong about.
const PROBE_TIMEOUT_MS = 600;
// Received bytes are looked at this often. Unchanged PROBE_POLLS times in a row, the socket is
// probed; STALL_POLLS times, the media is down. With an inspector's voice the claimant receives
// 50 packets a second, and the server's RTCP alone comes every 0.5-1.5 s.
const POLL_MS = 500;
const PROBE_POLLS = 2;
const STALL_POLLS = 4;

/**
 * Socket.IO options of both call pages. Quick retries, each attempt given up after a few seconds,
 * so that a phone whose network came back rejoins within a second or two rather than after the
 * client's default backoff of up to 5 s and a 20 s connection timeout.
 */
export const SOCKET_OPTIONS = {
  transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 2_000, timeout: 4_000,
};

/** A random id for this page, sent on every (re)connection: the server replaces the page's older connection. */
export function pageId() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

/** A control of the call bar: icon over a label; the label is also its accessible name. */
export function controlButton(name, label, onclick, extra = '') {
  return el('button', { class: `call-button ${extra}`.trim(), type: 'button', onclick, 'aria-label': label, title: label },
    icon(name), el('span', { class: 'call-button-label', text: label }));
}

/** Change a control's name (and icon) in place, e.g. "Mute" → "Unmute". */
function relabel(button, label, iconName = null) {
  button.setAttribute('aria-label', label);
  button.title = label;
  button.querySelector('.call-button-label').textContent = label;
  if (iconName) button.replaceChild(icon(iconName), button.querySelector('svg'));
}

/** A toggle control's state: its name and icon, aria-pressed, and the class that shows it on. */
export function showToggle(button, on, label, iconName, onClass = 'call-button-on') {
  relabel(button, label, iconName);
  button.setAttribute('aria-pressed', String(on));
  button.classList.toggle(onClass, on);
}

/** Acknowledged emit with a timeout; `payload` undefined sends no argument. */
export function emitAck(socket, event, payload) {
  const timed = socket.timeout(ACK_TIMEOUT_MS);
  return payload === undefined ? timed.emitWithAck(event) : timed.emitWithAck(event, payload);
}

/**
 * Resolves when gathering is complete, or has gone quiet for GATHER_QUIET_MS with a candidate in
 * hand (a relay one, when TURN servers are configured). Right after a network change Chrome can
 * hold "gathering" open for seconds on a network that no longer exists, while the new network's
 * candidates came at once.
 */
function gatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  const turn = (pc.getConfiguration().iceServers ?? [])
    .some((server) => [server.urls].flat().some((url) => String(url).startsWith('turn')));
  return new Promise((resolve) => {
    let quiet = 0;
    let usable = false;
    const finish = () => {
      window.clearTimeout(quiet);
      window.clearTimeout(cap);
      pc.removeEventListener('icegatheringstatechange', onState);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const onState = () => { if (pc.iceGatheringState === 'complete') finish(); };
    const onCandidate = (event) => {
      if (!event.candidate) return;
      usable ||= !turn || event.candidate.type === 'relay';
      window.clearTimeout(quiet);
      if (usable) quiet = window.setTimeout(finish, GATHER_QUIET_MS);
    };
    pc.addEventListener('icegatheringstatechange', onState);
    pc.addEventListener('icecandidate', onCandidate);
    const cap = window.setTimeout(finish, GATHER_TIMEOUT_MS); // send what was gathered rather than never
  });
}

/** Offer, wait for the candidates, send `rtc_offer`, apply the server's answer. */
export async function offerToServer(pc, socket, timeoutMs = ACK_TIMEOUT_MS) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  // Never buffered for a later connection: a stale offer would replace the peer of a newer one.
  if (!socket.connected) throw new Error('offline');
  const reply = await socket.timeout(timeoutMs).emitWithAck('rtc_offer', { type: 'offer', sdp: pc.localDescription.sdp });
  if (!reply.ok) throw new Error(reply.error?.code ?? 'offer refused');
  if (pc.signalingState === 'closed') throw new Error('replaced');
  await pc.setRemoteDescription(reply.answer);
}

/**
 * Keeps a call page's media up across network changes. The page's `negotiate(timeoutMs)` builds a
 * brand-new RTCPeerConnection, hands it to `watch`, and offers it over the socket; the server puts
 * the new peer where the old one was, so the others in the call renegotiate nothing.
 *
 * Nothing received for a second (after a phone's address changes Chrome takes ~7 s to call the
 * connection "disconnected"): the socket must answer an idempotent `join` at once or is reconnected,
 * rather than after its ping timeout, and the page negotiates afresh on that connect. Nothing for two
 * seconds, or "disconnected": the media is down, and still down RESTART_AFTER_MS later (or failed, or
 * never connected) its peer connection is replaced over the live socket. `onChange(up)` says whether
 * media flows.
 */
export class MediaKeeper {
  constructor(socket, negotiate, onChange) {
    this.socket = socket;
    this.negotiate = negotiate;
    this.onChange = onChange;
    this.pc = null;
    this.timer = 0;
    this.restarting = false;
    this.probing = false;
    this.up = false;
    this.received = -1;
    this.still = 0;
    this.poller = window.setInterval(() => this.poll(), POLL_MS);
  }

  watch(pc) {
    this.pc = pc;
    this.received = -1;
    this.still = 0;
    this.arm(CONNECT_TIMEOUT_MS);
    pc.addEventListener('connectionstatechange', () => this.changed(pc));
  }

  changed(pc) {
    if (pc !== this.pc) return;
    const s = pc.connectionState;
    if (s === 'connected') this.flowing();
    else if (s === 'disconnected') this.down();
    else if (s === 'failed') {
      this.set(false);
      this.restart(pc);
    }
  }

  flowing() {
    window.clearTimeout(this.timer);
    this.timer = 0;
    this.set(true);
  }

  down() {
    if (!this.up) return;
    this.set(false);
    this.arm(RESTART_AFTER_MS);
    this.probe();
  }

  async poll() {
    const pc = this.pc;
    if (!pc || pc.connectionState !== 'connected' || !this.socket.connected) return;
    let received = 0;
    (await pc.getStats()).forEach((report) => {
      if (report.type === 'transport') received += report.bytesReceived ?? 0;
    });
    if (pc !== this.pc) return;
    if (received !== this.received) {
      this.received = received;
      this.still = 0;
      if (!this.up) this.flowing();
    } else {
      this.still += 1;
      if (this.still === PROBE_POLLS) this.probe();
      if (this.still >= STALL_POLLS) this.down();
    }
  }

  /** Reconnect the socket now if it no longer carries events. */
  async probe() {
    if (!this.socket.connected || this.probing) return;
    this.probing = true;
    const engine = this.socket.io.engine;
    try {
      await this.socket.timeout(PROBE_TIMEOUT_MS).emitWithAck('join');
    } catch {
      this.reconnect(engine);
    } finally {
      this.probing = false;
    }
  }

  reconnect(engine) {
    // Unless the socket has reconnected meanwhile: closing its new connection would cost another round.
    if (this.socket.io.engine === engine && this.socket.connected) engine.close();
  }

  /** The socket dropped: the media goes with it until a new connection says otherwise. */
  lost() {
    this.set(false);
  }

  stop() {
    window.clearTimeout(this.timer);
    window.clearInterval(this.poller);
    this.pc = null;
  }

  set(up) {
    if (up === this.up) return;
    this.up = up;
    this.onChange(up);
  }

  arm(ms) {
    window.clearTimeout(this.timer);
    const pc = this.pc;
    this.timer = window.setTimeout(() => this.restart(pc), ms);
  }

  async restart(pc) {
    window.clearTimeout(this.timer);
    this.timer = 0;
    if (pc !== this.pc || this.up || this.restarting) return;
    if (!this.socket.connected) return; // the socket is reconnecting; its connect renegotiates
    this.restarting = true;
    const engine = this.socket.io.engine;
    try {
      await this.negotiate(REOFFER_TIMEOUT_MS);
    } catch (error) {
      console.info('renegotiation failed; reconnecting', error?.message);
      this.reconnect(engine);
    } finally {
      this.restarting = false;
    }
  }
}

/** Where the picture sits inside a <video> with object-fit: contain, relative to `stage`. */
export function pictureRect(video, stage) {
  const box = video.getBoundingClientRect();
  const outer = stage.getBoundingClientRect();
  const vw = video.videoWidth || 4;
  const vh = video.videoHeight || 3;
  const scale = Math.min(box.width / vw, box.height / vh);
  const w = vw * scale;
  const h = vh * scale;
  return { left: box.left - outer.left + (box.width - w) / 2, top: box.top - outer.top + (box.height - h) / 2, w, h };
}

/** Move a pointer element to the fraction (x, y) of the picture. */
export function placePointer(pointer, video, stage, x, y) {
  const r = pictureRect(video, stage);
  pointer.style.transform = `translate(${r.left + x * r.w}px, ${r.top + y * r.h}px)`;
}

/**
 * The chat: history, a live list and a form. `text` holds the translated labels; `isMine` and
 * `nameOf` say how a message is shown; `send(text)` resolves to the acknowledged message.
 */
export class ChatPanel {
  constructor({ id, text, isMine, nameOf, send, onUnread = () => {} }) {
    this.isMine = isMine;
    this.nameOf = nameOf;
    this.sendText = send;
    this.onUnread = onUnread;
    this.text = text;
    this.list = el('ol', { class: 'chat-list', 'aria-live': 'polite' });
    this.empty = el('p', { class: 'muted chat-empty', text: text.empty });
    this.input = el('input', { id: `${id}-input`, type: 'text', placeholder: text.message, maxlength: '1000',
      autocomplete: 'off', required: true });
    this.error = el('p', { class: 'chat-error', role: 'alert' });
    const form = el('form', { class: 'chat-form', onsubmit: (event) => this.submit(event) },
      el('label', { class: 'visually-hidden', for: `${id}-input`, text: text.message }),
      this.input,
      el('button', { class: 'button button-primary', type: 'submit', 'aria-label': text.send }, icon('send')));
    this.closeButton = el('button', { class: 'button button-small', type: 'button', 'aria-label': text.close }, icon('close'));
    this.element = el('section', { class: 'chat-panel', id, hidden: true, 'aria-labelledby': `${id}-title` },
      el('div', { class: 'chat-head' }, el('h2', { id: `${id}-title`, text: text.title }), this.closeButton),
      this.empty, this.list, this.error, form);
  }

  get open() {
    return !this.element.hidden;
  }

  show(open) {
    this.element.hidden = !open;
    if (open) {
      this.input.focus();
      this.list.lastElementChild?.scrollIntoView({ block: 'end' });
    }
  }

  replace(messages) {
    this.list.replaceChildren();
    this.empty.hidden = false;
    for (const message of messages ?? []) this.add(message, false);
  }

  add(message, live = true) {
    if (!message || typeof message.text !== 'string') return;
    const mine = this.isMine(message);
    this.list.append(el('li', { class: `chat-message ${mine ? 'chat-mine' : 'chat-theirs'}` },
      el('span', { class: 'chat-from', text: mine ? this.text.you : this.nameOf(message) }),
      el('p', { class: 'chat-text', text: message.text })));
    this.empty.hidden = true;
    if (this.open) this.list.lastElementChild.scrollIntoView({ block: 'end' });
    if (live && !mine && !this.open) this.onUnread();
  }

  async submit(event) {
    event.preventDefault();
    const value = this.input.value.trim();
    if (!value) return;
    this.error.textContent = '';
    try {
      const message = await this.sendText(value);
      this.input.value = '';
      this.add(message);
    } catch {
      this.error.textContent = this.text.failed;
    }
  }
}
