// Small DOM helpers: elements are built with textContent, never innerHTML, so data is never markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** el('button', {class: 'x', type: 'button', onclick: fn}, child, 'text', ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const ICONS = {
  plus: 'M12 5v14M5 12h14',
  mail: 'M3.5 6h17v12h-17zM3.5 6.5l8.5 6.5 8.5-6.5',
  log: 'M9 6h11M9 12h11M9 18h11M4.5 6h.01M4.5 12h.01M4.5 18h.01',
  picture: 'M4 5h16v14H4zM4 16l4.5-4.5 3.5 3.5 2.5-2.5L20 18M15.5 9.5h.01',
  video: 'M3.5 7h11v10h-11zM14.5 10.5 20.5 7v10l-6-3.5',
  join: 'M14 4h4.5A1.5 1.5 0 0 1 20 5.5v13a1.5 1.5 0 0 1-1.5 1.5H14M9.5 16.5 14 12 9.5 7.5M14 12H3.5',
  more: 'M5.5 12h.01M12 12h.01M18.5 12h.01',
  close: 'M6.5 6.5l11 11M17.5 6.5l-11 11',
  resend: 'M20 5v5h-5M19.3 14.5A7.5 7.5 0 1 1 18 8.2L20 10',
  chevron: 'M6.5 9.5 12 15l5.5-5.5',
  play: 'M8 5.5v13l10.5-6.5z',
  send: 'M21 3 10 14M21 3l-6.5 18-4.5-7-7-4.5z',
  info: 'M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18zM12 11v5.5M12 7.5h.01',
  alert: 'M12 3.5 2.5 20h19zM12 10v4.5M12 17.5h.01',
  mic: 'M12 3.5a3 3 0 0 1 3 3V12a3 3 0 0 1-6 0V6.5a3 3 0 0 1 3-3zM5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21',
  'mic-off': 'M4 4l16 16M15 10V6.5a3 3 0 0 0-5.8-1.1M9 9v3a3 3 0 0 0 4.7 2.5M5.5 11a6.5 6.5 0 0 0 10.6 5M18.5 11a6.5 6.5 0 0 1-.6 2.7M12 17.5V21',
  chat: 'M4 5h16v11H9l-5 4z',
  flip: 'M4 8h13l-3-3M20 16H7l3 3',
  camera: 'M3.5 8h3.5l1.5-2.5h7L17 8h3.5v11h-17zM12 16.5a3.5 3.5 0 1 0 0-7 3.5 3.5 0 0 0 0 7z',
  record: 'M12 19a7 7 0 1 0 0-14 7 7 0 0 0 0 14zM12 14.5a2.5 2.5 0 1 0 0-5 2.5 2.5 0 0 0 0 5z',
  stop: 'M6.5 6.5h11v11h-11z',
  pointer: 'M5 3.5 18.5 10l-6 1.8L10 18z',
  hangup: 'M3 14.5c5-5 13-5 18 0l-2.5 2.5-3.5-1.5v-2.5a11 11 0 0 0-6 0v2.5L5.5 17z',
};

/** An inline SVG icon, hidden from assistive technology (the control carries the name). */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon icon-${name}`);
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', ICONS[name] ?? ICONS.info);
  svg.append(path);
  return svg;
}
