// What the two call pages (the claimant's /join/{token} and the inspector's /calls/{id}) share:
// the big control buttons, the chat panel, the geometry of the video picture, and the WebRTC
// offer, which leaves once ICE gathering is complete (the server does not trickle).

import { el, icon } from './dom.js';

export const ACK_TIMEOUT_MS = 15_000;
const GATHER_TIMEOUT_MS = 5_000;

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

function gatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== 'complete') return;
      pc.removeEventListener('icegatheringstatechange', done);
      resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    window.setTimeout(resolve, GATHER_TIMEOUT_MS); // send what was gathered rather than never
  });
}

/** Offer, wait for the candidates, send `rtc_offer`, apply the server's answer. */
export async function offerToServer(pc, socket) {
  await pc.setLocalDescription(await pc.createOffer());
  await gatheringComplete(pc);
  const reply = await emitAck(socket, 'rtc_offer', { type: 'offer', sdp: pc.localDescription.sdp });
  if (!reply.ok) throw new Error(reply.error?.code ?? 'offer refused');
  await pc.setRemoteDescription(reply.answer);
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
