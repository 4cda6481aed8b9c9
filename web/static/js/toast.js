// Toasts: short notices bottom right, announced politely, gone after a few seconds.

import { el } from './dom.js';

const SHOW_MS = 6000;
let region = null;

function ensureRegion() {
  if (region && document.body.contains(region)) return region;
  region = el('div', { class: 'toasts', 'aria-live': 'polite', 'aria-atomic': 'false', role: 'status' });
  document.body.append(region);
  return region;
}

/** Show `text` as a toast; kind is 'info', 'success' or 'error'. */
export function toast(text, kind = 'info') {
  const item = el('div', { class: `toast toast-${kind}` }, el('p', { text }));
  ensureRegion().append(item);
  window.setTimeout(() => {
    item.classList.add('toast-leaving');
    window.setTimeout(() => item.remove(), 300);
  }, SHOW_MS);
  return item;
}
