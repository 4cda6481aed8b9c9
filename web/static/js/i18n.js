// Text of the pages: one catalogue per language in /static/i18n/{lang}.json, flat keys, {name} placeholders.
// The server-rendered pages read the same files (web/i18n.py).

export const LANGUAGES = ['en', 'fi'];
const FALLBACK = 'en';

let language = FALLBACK;
let texts = {};
let fallback = {};

async function fetchCatalogue(lang) {
  const resp = await fetch(`/static/i18n/${lang}.json`, { cache: 'no-cache' });
  if (!resp.ok) throw new Error(`catalogue ${lang}: HTTP ${resp.status}`);
  return resp.json();
}

/** The first of the browser's languages we have a catalogue for. */
export function browserLanguage() {
  for (const tag of navigator.languages ?? [navigator.language]) {
    const primary = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(primary)) return primary;
  }
  return FALLBACK;
}

/** Load a catalogue (falling back to English for unknown languages) and make it current. */
export async function useLanguage(lang) {
  const wanted = LANGUAGES.includes(lang) ? lang : FALLBACK;
  if (!Object.keys(fallback).length) fallback = await fetchCatalogue(FALLBACK);
  texts = wanted === FALLBACK ? fallback : await fetchCatalogue(wanted);
  language = wanted;
  document.documentElement.lang = wanted;
  // Text the server rendered into the page shell carries its key.
  for (const node of document.querySelectorAll('[data-i18n]')) node.textContent = t(node.dataset.i18n);
  return wanted;
}

export function currentLanguage() {
  return language;
}

/** The text of `key` with {placeholders} filled from `params`. A missing key shows the key itself. */
export function t(key, params = {}) {
  const text = texts[key] ?? fallback[key];
  if (text === undefined) {
    console.warn(`i18n: missing key ${key}`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Locale-aware date and time, e.g. "21 Nov 2026, 12:00" / "21.11.2026 klo 12.00"; seconds on request. */
export function formatDateTime(iso, seconds = false) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return new Intl.DateTimeFormat(language === 'fi' ? 'fi-FI' : 'en-GB', {
    dateStyle: 'medium',
    timeStyle: seconds ? 'medium' : 'short',
  }).format(date);
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, '0')}`;
}
