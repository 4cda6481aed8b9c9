// Calls management of one case: invites with live statuses, and every call's log, pictures and videos.
// The server sends only a shell; the data comes from the REST API with the staff token, and live
// changes from the Socket.IO namespace /staff. Every text comes from the i18n catalogues.

import { ApiError, adoptTokenFromFragment, api, staffToken } from './auth.js';
import { el, icon } from './dom.js';
import { browserLanguage, formatDateTime, formatDuration, t, useLanguage } from './i18n.js';
import { toast } from './toast.js';

const STATUS_CLASS = { INVITED: 'invited', IN_CALL: 'in-call', ACTIVE: 'active', CLOSED: 'closed' };
const TABS = ['invites', 'log', 'pictures', 'videos'];
const TAB_ICON = { invites: 'mail', log: 'log', pictures: 'picture', videos: 'video' };
const MEDIA_KIND = { pictures: 'picture', videos: 'video' };
const LINK_MARGIN_MS = 20_000; // fetch fresh signed links when they expire within this

const main = document.getElementById('main');
const caseId = document.body.dataset.caseId ?? '';
const demoMode = document.body.dataset.demo === 'true';

const state = {
  kase: null,
  access: 'read',
  canInvite: false,
  invites: [],
  tab: 'invites',
  stale: { log: true, pictures: true, videos: true },
  expanded: { log: new Map(), pictures: new Map(), videos: new Map() },
  focusInvite: null,
  live: 'connecting',
  timers: new Map(),
  loads: new Map(), // the latest request per view: an older answer arriving late is dropped
};

const refs = { tabs: {}, panels: {} };

// ---------- small helpers ----------

function plural(key, count) {
  return t(`${key}_${count === 1 ? 'one' : 'other'}`, { count });
}

function methodLabel(method) {
  return t(`method.${method}`);
}

function statusLabel(status) {
  return t(`status.${status}.label`);
}

function statusDescription(invite) {
  if (invite.status === 'CLOSED' && invite.closed_reason === 'expired') return t('status.CLOSED.expired');
  return t(`status.${invite.status}.description`);
}

function debounce(name, fn, ms = 300) {
  window.clearTimeout(state.timers.get(name));
  state.timers.set(name, window.setTimeout(fn, ms));
}

function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 0) return t('error.network');
    if (error.status === 401) return t('error.session');
    if (error.status === 403) return t('error.forbidden');
    if (error.status === 404) return t('error.not_found');
    if (error.status === 409 || error.status === 410) return t('error.conflict');
    if (error.status === 422) return t('error.unprocessable');
  }
  return t('error.generic');
}

function notice(kind, ...children) {
  return el('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : null },
    icon(kind === 'error' ? 'alert' : 'info'), el('div', {}, ...children));
}

function loginHint() {
  return demoMode ? el('p', {}, el('a', { href: '/dev/login', text: t('auth.demo_login') })) : null;
}

// ---------- boot ----------

async function boot() {
  adoptTokenFromFragment();
  await useLanguage(browserLanguage());
  if (!staffToken()) {
    showProblem(t('auth.no_token_title'), t('auth.no_token'));
    return;
  }
  try {
    state.kase = await api(`/cases/${encodeURIComponent(caseId)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showProblem(t('auth.invalid_title'), t('auth.invalid'));
    else if (error instanceof ApiError && error.status === 404) showProblem(t('calls.heading'), t('error.case_not_found'));
    else showProblem(t('calls.heading'), errorText(error), true);
    return;
  }
  // The portal's language wins over the browser's once the case is known.
  await useLanguage(state.kase.language || browserLanguage());
  state.access = state.kase.access;
  state.canInvite = state.kase.can_invite;
  renderPage();
  await refreshInvites();
  connectLive();
}

function showProblem(title, text, retry = false) {
  document.title = `${title} · ${t('app.name')}`;
  main.replaceChildren(
    el('h1', { text: title }),
    notice('error', el('p', { text }), loginHint(),
      retry ? el('button', { type: 'button', class: 'button button-secondary', text: t('common.retry'),
        onclick: () => window.location.reload() }) : null),
  );
}

// ---------- page ----------

function renderPage() {
  const k = state.kase;
  document.title = `${t('calls.heading')} · ${k.reference} · ${t('app.name')}`;
  refs.live = el('p', { class: 'live live-connecting', role: 'status' });
  setLive(state.live);
  refs.create = state.canInvite
    ? el('button', { type: 'button', class: 'button button-primary', id: 'create-invite',
      onclick: openInviteDialog }, icon('plus'), el('span', { text: t('calls.create') }))
    : null;
  const head = el('div', { class: 'page-head' },
    el('div', { class: 'page-title' },
      el('p', { class: 'eyebrow' }, el('span', { class: 'case-ref', text: k.reference }),
        k.title ? el('span', { text: ` · ${k.title}` }) : null),
      el('h1', { text: t('calls.heading') }),
      k.address ? el('p', { class: 'case-address', text: k.address }) : null),
    el('div', { class: 'page-tools' }, refs.live, refs.create));
  if (state.access !== 'full') {
    refs.readOnly = notice('info', el('p', { text: t('calls.read_only') }));
  }
  const tablist = el('div', { role: 'tablist', class: 'tabs', 'aria-label': t('calls.views') });
  tablist.addEventListener('keydown', onTabKey);
  const panels = [];
  for (const name of TABS) {
    const selected = name === state.tab;
    const tab = el('button', {
      type: 'button', role: 'tab', class: 'tab', id: `tab-${name}`, 'aria-controls': `panel-${name}`,
      'aria-selected': String(selected), tabindex: selected ? '0' : '-1', onclick: () => selectTab(name),
    }, icon(TAB_ICON[name]), el('span', { text: t(`tab.${name}`) }));
    refs.tabs[name] = tab;
    tablist.append(tab);
    const panel = el('section', {
      role: 'tabpanel', class: 'panel', id: `panel-${name}`, 'aria-labelledby': `tab-${name}`, hidden: !selected,
    });
    refs.panels[name] = panel;
    panels.push(panel);
  }
  main.replaceChildren(head, refs.readOnly ?? '', tablist, ...panels);
  refs.panels.invites.append(el('p', { class: 'loading', text: t('common.loading') }));
}

function setLive(live) {
  state.live = live;
  if (!refs.live) return;
  refs.live.className = `live live-${live}`;
  refs.live.replaceChildren(el('span', { class: 'live-dot', 'aria-hidden': 'true' }),
    el('span', { text: t(`live.${live}`) }));
}

// ---------- tabs ----------

function onTabKey(event) {
  const index = TABS.indexOf(state.tab);
  const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const next = TABS[(moves[event.key] + TABS.length) % TABS.length];
  selectTab(next);
  refs.tabs[next].focus();
}

function selectTab(name, inviteId = null) {
  state.tab = name;
  state.focusInvite = inviteId;
  for (const other of TABS) {
    const selected = other === name;
    refs.tabs[other].setAttribute('aria-selected', String(selected));
    refs.tabs[other].tabIndex = selected ? 0 : -1;
    refs.panels[other].hidden = !selected;
  }
  if (name !== 'invites' && state.stale[name]) loadPanel(name);
  else if (inviteId) revealGroup(name, inviteId);
}

// ---------- invites ----------

function nextLoad(name) {
  const seq = (state.loads.get(name) ?? 0) + 1;
  state.loads.set(name, seq);
  return () => state.loads.get(name) === seq;
}

async function refreshInvites() {
  const latest = nextLoad('invites');
  try {
    const list = await api(`/cases/${encodeURIComponent(caseId)}/invites`);
    if (!latest()) return;
    state.invites = list.invites;
    state.access = list.access;
    state.canInvite = list.can_invite;
    renderInvites();
  } catch (error) {
    if (!latest()) return;
    refs.panels.invites.replaceChildren(notice('error', el('p', { text: errorText(error) }),
      el('button', { type: 'button', class: 'button button-secondary', text: t('common.retry'),
        onclick: refreshInvites })));
  }
}

function renderInvites() {
  const panel = refs.panels.invites;
  const focused = rememberFocus(panel);
  const legend = statusLegend();
  if (!state.invites.length) {
    panel.replaceChildren(el('p', { class: 'empty', text: t(state.canInvite ? 'invites.empty_full' : 'invites.empty') }),
      legend);
    return;
  }
  const columns = ['status', 'receiver', 'contact', 'sender', 'created', 'actions'];
  const head = el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: t(`invites.col.${c}`) })));
  refs.rows = el('tbody', {}, state.invites.map(inviteRow));
  panel.replaceChildren(
    el('div', { class: 'table-wrap' },
      el('table', { class: 'invites cards-on-mobile' },
        el('caption', { class: 'visually-hidden', text: t('invites.caption') }),
        el('thead', {}, head), refs.rows)),
    legend);
  restoreFocus(panel, focused);
}

function statusBadge(invite, withTip = true) {
  const cls = `badge badge-${STATUS_CLASS[invite.status] ?? 'closed'}`;
  if (!withTip) return el('span', { class: cls, text: statusLabel(invite.status) });
  const tipId = `status-tip-${invite.id}`;
  const badge = el('span', { class: cls, tabindex: '0', 'aria-describedby': tipId, dataset: { status: invite.status },
    text: statusLabel(invite.status) });
  const wrap = el('span', { class: 'badge-wrap' }, badge,
    el('span', { class: 'tooltip', role: 'tooltip', id: tipId, text: statusDescription(invite) }));
  // Escape dismisses the tooltip without moving focus (WCAG 1.4.13); it comes back on the next focus.
  badge.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') wrap.classList.add('tip-dismissed');
  });
  badge.addEventListener('blur', () => wrap.classList.remove('tip-dismissed'));
  return wrap;
}

function statusLegend() {
  return el('details', { class: 'legend' },
    el('summary', { text: t('legend.title') }),
    el('dl', {}, ['INVITED', 'IN_CALL', 'ACTIVE', 'CLOSED'].map((status) => [
      el('dt', {}, statusBadge({ id: `legend-${status}`, status }, false)),
      el('dd', { text: t(`status.${status}.description`) }),
    ])));
}

function cell(column, ...children) {
  // One wrapper, so the phone layout's two-column grid gets exactly the label and the content.
  return el('td', { class: `col-${column}`, 'data-label': t(`invites.col.${column}`) },
    el('div', { class: 'cell-body' }, ...children));
}

/** An address or number with a line-break opportunity after "@" instead of anywhere. */
function breakable(text) {
  const at = text.indexOf('@');
  return at < 0 ? [text] : [text.slice(0, at + 1), el('wbr'), text.slice(at + 1)];
}

function inviteRow(invite) {
  const actions = new Set(invite.actions);
  // Two groups that each stay on one line; the second moves below the first when the table is narrow.
  const viewing = el('div', { class: 'action-group' });
  const calling = el('div', { class: 'action-group' });
  if (actions.has('events')) {
    viewing.append(rowButton('log', 'row.events', () => selectTab('log', invite.id)));
  }
  if (actions.has('pictures')) {
    viewing.append(rowButton('picture', 'row.pictures', () => selectTab('pictures', invite.id), invite.pictures));
  }
  if (actions.has('videos')) {
    viewing.append(rowButton('video', 'row.videos', () => selectTab('videos', invite.id), invite.videos));
  }
  if (state.access === 'full') calling.append(joinButton(invite, actions.has('join')));
  if (actions.has('close') || actions.has('resend')) calling.append(moreMenu(invite, actions));
  const buttons = el('div', { class: 'row-actions' }, viewing, calling.childElementCount ? calling : null);
  const sender = invite.sender ?? {};
  return el('tr', { dataset: { inviteId: invite.id, status: invite.status } },
    cell('status', statusBadge(invite)),
    cell('receiver', el('span', { class: 'strong', text: invite.contact_name }),
      invite.task_name ? el('span', { class: 'muted block', text: invite.task_name })
        : el('span', { class: 'muted block', text: t('invite.no_task') })),
    cell('contact', el('span', { class: 'tag', text: methodLabel(invite.method) }), ' ',
      el('span', { class: 'destination' }, breakable(invite.destination)),
      invite.resend_count ? el('span', { class: 'muted block', text: plural('invite.resent', invite.resend_count) })
        : null),
    cell('sender', el('span', { class: 'block', text: sender.name ?? '' }),
      sender.company ? el('span', { class: 'muted block', text: sender.company }) : null),
    cell('created', el('time', { datetime: invite.created_at, text: formatDateTime(invite.created_at) })),
    el('td', { class: 'col-actions', 'data-label': t('invites.col.actions') }, buttons));
}

function rowButton(iconName, key, onclick, count = null) {
  const button = el('button', { type: 'button', class: 'button button-small', dataset: { action: key }, onclick },
    icon(iconName), el('span', { text: t(key) }));
  if (count !== null) {
    button.append(el('span', { class: `count${count ? '' : ' count-zero'}`, 'aria-hidden': 'true', text: String(count) }),
      el('span', { class: 'visually-hidden', text: t('row.count', { count }) }));
  }
  return button;
}

function joinButton(invite, enabled) {
  const button = rowButton('join', 'row.join', () => {
    if (button.getAttribute('aria-disabled') === 'true') return;
    // Not noopener: the new tab must inherit this tab's sessionStorage (the staff token).
    const tab = window.open(`/calls/${encodeURIComponent(invite.id)}`, '_blank');
    if (tab) tab.opener = null;
  });
  button.classList.add('button-join');
  if (!enabled) {
    const hintId = `join-hint-${invite.id}`;
    button.setAttribute('aria-disabled', 'true');
    button.setAttribute('aria-describedby', hintId);
    return el('span', { class: 'join-wrap' }, button,
      el('span', { class: 'visually-hidden', id: hintId, text: t('row.join_unavailable') }));
  }
  return button;
}

function moreMenu(invite, actions) {
  const menuId = `menu-${invite.id}`;
  const trigger = el('button', {
    type: 'button', class: 'button button-small button-icon', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    'aria-controls': menuId, dataset: { action: 'row.more' },
  }, icon('more'), el('span', { class: 'visually-hidden', text: t('row.more') }));
  const items = [];
  if (actions.has('close')) {
    items.push(el('button', { type: 'button', role: 'menuitem', class: 'menu-item menu-item-danger', tabindex: '-1',
      onclick: () => { closeMenu(); confirmClose(invite); } }, icon('close'), el('span', { text: t('row.close') })));
  }
  if (actions.has('resend')) {
    items.push(el('button', { type: 'button', role: 'menuitem', class: 'menu-item', tabindex: '-1',
      onclick: () => { closeMenu(); resend(invite); } }, icon('resend'), el('span', { text: t('row.resend') })));
  }
  const menu = el('div', { role: 'menu', class: 'menu', id: menuId, 'aria-label': t('row.more'), hidden: true },
    items);
  const wrap = el('div', { class: 'menu-wrap' }, trigger, menu);

  function closeMenu(returnFocus = false) {
    menu.hidden = true;
    trigger.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', onOutside, true);
    if (returnFocus) trigger.focus();
  }
  function onOutside(event) {
    if (!wrap.contains(event.target)) closeMenu();
  }
  function openMenu(focusLast = false) {
    menu.hidden = false;
    // Aligned with the button on one side or the other, whichever keeps it on the screen.
    menu.classList.remove('menu-start', 'menu-end');
    const box = menu.getBoundingClientRect();
    if (box.left < 8) menu.classList.add('menu-start');
    else if (box.right > document.documentElement.clientWidth - 8) menu.classList.add('menu-end');
    trigger.setAttribute('aria-expanded', 'true');
    document.addEventListener('pointerdown', onOutside, true);
    items[focusLast ? items.length - 1 : 0].focus();
  }
  trigger.addEventListener('click', () => (menu.hidden ? openMenu() : closeMenu()));
  trigger.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      openMenu(event.key === 'ArrowUp');
    }
  });
  menu.addEventListener('keydown', (event) => {
    const index = items.indexOf(document.activeElement);
    if (event.key === 'Escape') {
      event.preventDefault();
      closeMenu(true);
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      items[(index + step + items.length) % items.length].focus();
    } else if (event.key === 'Home' || event.key === 'End') {
      event.preventDefault();
      items[event.key === 'Home' ? 0 : items.length - 1].focus();
    } else if (event.key === 'Tab') {
      closeMenu();
    }
  });
  return wrap;
}

function rememberFocus(container) {
  const active = document.activeElement;
  if (!active || !container.contains(active)) return null;
  const row = active.closest('tr[data-invite-id]');
  return row ? { inviteId: row.dataset.inviteId, action: active.dataset.action ?? null } : null;
}

function restoreFocus(container, focused) {
  if (!focused) return;
  const row = container.querySelector(`tr[data-invite-id="${CSS.escape(focused.inviteId)}"]`);
  if (!row) return;
  const target = (focused.action && row.querySelector(`[data-action="${CSS.escape(focused.action)}"]`))
    || row.querySelector('button, [tabindex="0"]');
  target?.focus();
}

function updateRow(invite) {
  const old = refs.rows?.querySelector(`tr[data-invite-id="${CSS.escape(invite.id)}"]`);
  if (!old) return;
  const focused = rememberFocus(old);
  const row = inviteRow(invite);
  old.replaceWith(row);
  restoreFocus(refs.rows, focused);
}

function mergeInvite(changed) {
  const index = state.invites.findIndex((i) => i.id === changed.id);
  if (index < 0) return;
  state.invites[index] = changed;
  updateRow(changed);
}

// ---------- create, close, re-send ----------

function openInviteDialog() {
  const k = state.kase;
  const titleId = 'invite-dialog-title';
  const errorBox = el('div', { class: 'form-error', role: 'alert' });
  const contact = el('select', { id: 'invite-contact', name: 'contact', required: true, 'aria-describedby': 'invite-contact-card' },
    el('option', { value: '', text: t('invite.choose_contact') }),
    k.contacts.map((c) => el('option', {
      value: c.id, disabled: c.methods.length === 0,
      text: [c.name, c.phone, c.email].filter(Boolean).join(' · '),
    })));
  const card = el('div', { class: 'contact-card', id: 'invite-contact-card', 'aria-live': 'polite' });
  const methods = el('div', { class: 'radios' });
  const methodHint = el('p', { class: 'hint', id: 'invite-method-hint' });
  const task = el('select', { id: 'invite-task', name: 'task', 'aria-describedby': 'invite-task-hint' },
    el('option', { value: '', text: t('invite.no_task') }),
    k.tasks.map((x) => el('option', { value: x.id, text: x.name })));
  const send = el('button', { type: 'submit', class: 'button button-primary' }, icon('send'),
    el('span', { text: t('invite.send') }));
  const form = el('form', { class: 'dialog-form', novalidate: true },
    el('h2', { id: titleId, text: t('invite.title') }),
    el('p', { class: 'dialog-lead', text: t('invite.lead') }),
    el('div', { class: 'field' }, el('label', { for: 'invite-contact', text: t('invite.contact') }), contact),
    card,
    el('fieldset', { class: 'field', 'aria-describedby': 'invite-method-hint' },
      el('legend', { text: t('invite.method') }), methods, methodHint),
    el('div', { class: 'field' }, el('label', { for: 'invite-task', text: t('invite.task') }), task,
      el('p', { class: 'hint', id: 'invite-task-hint', text: t('invite.task_hint') })),
    errorBox,
    el('div', { class: 'dialog-actions' },
      el('button', { type: 'button', class: 'button button-secondary', text: t('common.cancel'),
        onclick: () => dialog.close() }),
      send));
  const dialog = el('dialog', { class: 'dialog', 'aria-labelledby': titleId }, form);

  function showContact() {
    const chosen = k.contacts.find((c) => c.id === contact.value);
    card.replaceChildren();
    methods.replaceChildren();
    if (!chosen) {
      methodHint.textContent = t('invite.method_choose_contact');
      return;
    }
    card.append(el('dl', {},
      el('dt', { text: t('invite.role') }), el('dd', { text: t(`contact_role.${chosen.role}`) }),
      el('dt', { text: t('invite.phone') }), el('dd', { text: chosen.phone || t('invite.none') }),
      el('dt', { text: t('invite.email') }), el('dd', { text: chosen.email || t('invite.none') })));
    for (const m of ['sms', 'email']) {
      if (!chosen.methods.includes(m)) continue;
      const id = `invite-method-${m}`;
      methods.append(el('div', { class: 'radio' },
        el('input', { type: 'radio', name: 'method', id, value: m }),
        el('label', { for: id, text: methodLabel(m) })));
    }
    const first = methods.querySelector('input');
    if (first) first.checked = true;
    methodHint.textContent = chosen.methods.length === 1 ? t(`invite.only_${chosen.methods[0]}`) : '';
  }
  contact.addEventListener('change', showContact);
  showContact();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.replaceChildren();
    const method = form.querySelector('input[name="method"]:checked')?.value;
    if (!contact.value) {
      errorBox.append(el('p', { text: t('invite.error.contact') }));
      contact.focus();
      return;
    }
    if (!method) {
      errorBox.append(el('p', { text: t('invite.error.method') }));
      return;
    }
    send.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const body = { contact_id: contact.value, method };
      if (task.value) body.task_id = task.value;
      const created = await api(`/cases/${encodeURIComponent(caseId)}/invites`, { method: 'POST', body });
      dialog.close();
      toast(t('toast.invite_sent', { name: created.contact_name, method: methodLabel(created.method) }), 'success');
      if (!state.invites.some((i) => i.id === created.id)) state.invites.unshift(created);
      renderInvites();
      selectTab('invites');
    } catch (error) {
      errorBox.append(el('p', { text: errorText(error) }));
    } finally {
      send.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    refs.create?.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  contact.focus();
}

function confirmClose(invite) {
  const titleId = 'close-dialog-title';
  const textId = 'close-dialog-text';
  const errorBox = el('div', { class: 'form-error', role: 'alert' });
  const opener = document.querySelector(`tr[data-invite-id="${CSS.escape(invite.id)}"] [data-action="row.more"]`);
  const confirm = el('button', { type: 'submit', class: 'button button-danger' }, icon('close'),
    el('span', { text: t('close.confirm') }));
  const cancel = el('button', { type: 'button', class: 'button button-secondary', text: t('common.cancel'),
    onclick: () => dialog.close() });
  const form = el('form', { class: 'dialog-form' },
    el('h2', { id: titleId, text: t('close.title') }),
    el('p', { id: textId, text: t('close.text', { name: invite.contact_name }) }),
    errorBox,
    el('div', { class: 'dialog-actions' }, cancel, confirm));
  const dialog = el('dialog', { class: 'dialog dialog-small', 'aria-labelledby': titleId, 'aria-describedby': textId },
    form);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    try {
      const closed = await api(`/invites/${encodeURIComponent(invite.id)}/close`, { method: 'POST' });
      mergeInvite(closed);
      dialog.close();
      toast(t('toast.closed', { name: invite.contact_name }), 'success');
    } catch (error) {
      errorBox.replaceChildren(el('p', { text: errorText(error) }));
      confirm.disabled = false;
    }
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    const row = refs.rows?.querySelector(`tr[data-invite-id="${CSS.escape(invite.id)}"]`);
    (opener?.isConnected ? opener : row?.querySelector('button'))?.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  cancel.focus();
}

async function resend(invite) {
  try {
    const sent = await api(`/invites/${encodeURIComponent(invite.id)}/resend`, { method: 'POST' });
    mergeInvite(sent);
    toast(t('toast.resent', { name: sent.contact_name, method: methodLabel(sent.method) }), 'success');
  } catch (error) {
    toast(errorText(error), 'error');
    refreshInvites();
  }
}

// ---------- log, pictures, videos: grouped per call ----------

async function loadPanel(name) {
  const panel = refs.panels[name];
  const latest = nextLoad(name);
  state.stale[name] = false; // changes arriving from now on mark it stale again
  panel.setAttribute('aria-busy', 'true');
  if (!panel.childElementCount) panel.append(el('p', { class: 'loading', text: t('common.loading') }));
  try {
    if (name === 'log') {
      const data = await api(`/cases/${encodeURIComponent(caseId)}/events`);
      if (!latest()) return;
      renderLog(data.groups);
    } else {
      const data = await api(`/cases/${encodeURIComponent(caseId)}/media?kind=${MEDIA_KIND[name]}`);
      if (!latest()) return;
      if (!(await renderMedia(name, data.items, latest))) return;
    }
  } catch (error) {
    if (!latest()) return;
    state.stale[name] = true;
    panel.replaceChildren(notice('error', el('p', { text: errorText(error) }),
      el('button', { type: 'button', class: 'button button-secondary', text: t('common.retry'),
        onclick: () => loadPanel(name) })));
  } finally {
    if (latest()) panel.removeAttribute('aria-busy');
  }
  if (latest() && state.focusInvite && state.tab === name) revealGroup(name, state.focusInvite);
}

function group(panelName, invite, countText, hasContent, content) {
  const bodyId = `${panelName}-group-${invite.id}`;
  const remembered = state.expanded[panelName].get(invite.id);
  const expanded = remembered ?? hasContent;
  const toggle = el('button', {
    type: 'button', class: 'group-toggle', 'aria-expanded': String(expanded), 'aria-controls': bodyId,
  },
  icon('chevron'),
  el('span', { class: 'group-title' },
    el('span', { class: 'strong', text: invite.contact_name }),
    el('span', { class: 'muted', text: `${methodLabel(invite.method)} ${invite.destination} · ${formatDateTime(invite.created_at)}` })),
  statusBadge(invite, false),
  el('span', { class: 'group-count', text: countText }));
  const body = el('div', { class: 'group-body', id: bodyId, hidden: !expanded }, content);
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    body.hidden = !open;
    state.expanded[panelName].set(invite.id, open);
  });
  return el('section', { class: 'group', dataset: { inviteId: invite.id } }, el('h2', { class: 'group-heading' }, toggle),
    body);
}

function revealGroup(panelName, inviteId) {
  const panel = refs.panels[panelName];
  const section = panel.querySelector(`.group[data-invite-id="${CSS.escape(inviteId)}"]`);
  if (!section) return;
  const toggle = section.querySelector('.group-toggle');
  if (toggle.getAttribute('aria-expanded') !== 'true') toggle.click();
  section.scrollIntoView({ block: 'start', behavior: 'smooth' });
  toggle.focus({ preventScroll: true });
  state.focusInvite = null;
}

function emptyCase(panel) {
  panel.replaceChildren(el('p', { class: 'empty', text: t('invites.empty') }));
}

function eventText(e) {
  const d = e.data ?? {};
  const method = d.method ? methodLabel(d.method) : '';
  switch (e.kind) {
    case 'created': return t('event.created', { contact: d.contact ?? '', method, to: d.to ?? '' });
    case 'sent': return t('event.sent', { method, to: d.to ?? '' });
    case 'resent': return t('event.resent', { method, to: d.to ?? '' });
    case 'delivery_failed': return t('event.delivery_failed', { attempt: d.attempt ?? '?' });
    case 'closed': return t(d.reason === 'expired' ? 'event.expired' : 'event.closed');
    case 'left': return t('event.left', { duration: formatDuration(d.seconds) });
    case 'call_ended': return t('event.call_ended', { duration: formatDuration(d.duration_s) });
    case 'chat': return t('event.chat', { text: d.text ?? '' });
    case 'camera_switched': return t('event.camera_switched', { facing: t(`facing.${d.facing === 'user' ? 'user' : 'environment'}`) });
    case 'recording_stored': return d.duration_s ? t('event.recording_stored_duration', { duration: formatDuration(d.duration_s) })
      : t('event.recording_stored');
    default: {
      const key = `event.${e.kind}`;
      const text = t(key);
      return text === key ? e.kind.replaceAll('_', ' ') : text;
    }
  }
}

function actorName(actor) {
  if (actor.kind === 'system') return t('event.system');
  return actor.name || t(`event.actor_${actor.kind}`);
}

function renderLog(groups) {
  const panel = refs.panels.log;
  if (!groups.length) return emptyCase(panel);
  panel.replaceChildren(...groups.map(({ invite, events, integrity }) => {
    const list = el('ol', { class: 'events' }, events.map((e) => el('li', { class: `event event-${e.kind}` },
      el('time', { datetime: e.at, text: formatDateTime(e.at, true) }),
      el('span', { class: 'event-actor', text: actorName(e.actor) }),
      el('span', { class: 'event-text', text: eventText(e) }))));
    const warning = integrity.ok ? null : notice('error', el('p', {
      text: t('log.broken', { seq: integrity.broken_at ?? '?' }),
    }));
    const content = [warning, events.length ? list : el('p', { class: 'empty', text: t('log.empty') })];
    return group('log', invite, plural('count.events', events.length), events.length > 0, content);
  }));
}

async function signedLinks(item) {
  const links = await api(`/media/${encodeURIComponent(item.id)}/links`);
  return { ...links, expiresMs: new Date(links.expires_at).getTime() };
}

function mediaLink(item, links, content, label) {
  let current = links;
  const anchor = el('a', {
    class: item.kind === 'picture' ? 'thumb' : 'video-item', href: current.content_url, target: '_blank',
    rel: 'noopener', 'aria-label': label,
  }, content);
  anchor.addEventListener('click', async (event) => {
    if (current.expiresMs - Date.now() > LINK_MARGIN_MS) return; // the signed link is still good
    event.preventDefault();
    try {
      current = await signedLinks(item);
      anchor.href = current.content_url;
      window.open(current.content_url, '_blank', 'noopener');
    } catch (error) {
      toast(errorText(error), 'error');
    }
  });
  return anchor;
}

/** A capture kept on the server while the object store is unavailable: shown, marked, not openable yet. */
function pendingItem(name, when, by) {
  const note = el('span', { class: 'pending-note', text: t('media.pending') });
  if (name === 'pictures') {
    return el('li', {}, el('div', { class: 'thumb thumb-pending', role: 'img',
      'aria-label': t('pictures.pending', { when, by }) }, note,
    el('span', { class: 'pending-hint', text: t('media.pending_hint') }),
    el('span', { class: 'thumb-caption' }, el('span', { class: 'block', text: when }),
      by ? el('span', { class: 'block', text: by }) : null)));
  }
  return el('li', {}, el('div', { class: 'video-item video-pending' },
    el('span', { class: 'video-play' }, icon('play')),
    el('span', { class: 'video-meta' },
      el('span', { class: 'strong', text: t('videos.item', { when }) }),
      by ? el('span', { class: 'muted', text: by }) : null),
    note));
}

/** Render the grouped items; false when a newer load took over while the links were fetched. */
async function renderMedia(name, items, latest) {
  const panel = refs.panels[name];
  if (!state.invites.length) {
    emptyCase(panel);
    return true;
  }
  const byInvite = new Map();
  for (const item of items) {
    if (!byInvite.has(item.invite_id)) byInvite.set(item.invite_id, []);
    byInvite.get(item.invite_id).push(item);
  }
  const links = new Map(await Promise.all(items.map(async (item) => {
    if (item.state === 'pending') return [item.id, null]; // nothing to open until it is uploaded
    try {
      return [item.id, await signedLinks(item)];
    } catch {
      return [item.id, null];
    }
  })));
  if (!latest()) return false;
  const sections = state.invites.map((invite) => {
    const own = byInvite.get(invite.id) ?? [];
    const countText = plural(`count.${name}`, own.length);
    if (!own.length) {
      return group(name, invite, countText, false, el('p', { class: 'empty', text: t(`${name}.empty`) }));
    }
    const list = el('ul', { class: name === 'pictures' ? 'thumbs' : 'videos' }, own.map((item) => {
      const l = links.get(item.id);
      const when = formatDateTime(item.captured_at);
      const by = item.captured_by?.name ?? '';
      if (item.state === 'pending') return pendingItem(name, when, by);
      if (!l) return el('li', { class: 'media-missing', text: t('media.unavailable') });
      if (name === 'pictures') {
        const label = t('pictures.open', { when, by });
        const img = el('img', { src: l.thumbnail_url ?? l.content_url, alt: '', loading: 'lazy', decoding: 'async',
          width: '160', height: '120' });
        const caption = el('span', { class: 'thumb-caption' }, el('span', { class: 'block', text: when }),
          by ? el('span', { class: 'block', text: by }) : null);
        return el('li', {}, mediaLink(item, l, [img, caption], label));
      }
      const duration = item.duration_s ? formatDuration(item.duration_s) : '';
      const label = t('videos.open', { when, by, duration: duration || '–' });
      return el('li', {}, mediaLink(item, l, [
        el('span', { class: 'video-play' }, icon('play')),
        el('span', { class: 'video-meta' },
          el('span', { class: 'strong', text: t('videos.item', { when }) }),
          el('span', { class: 'muted', text: [duration, by].filter(Boolean).join(' · ') })),
      ], label));
    }));
    return group(name, invite, countText, true, list);
  });
  panel.replaceChildren(...sections);
  // Items of invites the list does not know yet: the list is behind, catch up.
  if ([...byInvite.keys()].some((id) => !state.invites.some((i) => i.id === id))) debounce('invites', refreshInvites);
  return true;
}

// ---------- live updates over /staff ----------

function connectLive() {
  if (typeof window.io !== 'function') {
    setLive('unavailable');
    return;
  }
  const socket = window.io('/staff', { auth: { jwt: staffToken() } });
  let connectedBefore = false;
  socket.on('connect', async () => {
    try {
      const ack = await socket.timeout(5000).emitWithAck('watch', { case_id: caseId });
      setLive(ack?.ok ? 'live' : 'unavailable');
    } catch {
      setLive('reconnecting');
    }
    if (connectedBefore) {
      // Updates may have been missed while disconnected.
      for (const name of ['log', 'pictures', 'videos']) state.stale[name] = true;
      await refreshInvites();
      if (state.tab !== 'invites') loadPanel(state.tab);
    }
    connectedBefore = true;
  });
  socket.on('disconnect', () => setLive('reconnecting'));
  socket.on('connect_error', (error) => {
    const code = error?.data?.code;
    setLive(code === 'invalid_token' || code === 'token_expired' || code === 'unauthorized' ? 'refused' : 'reconnecting');
  });
  socket.on('invite_updated', onInviteUpdated);
  socket.on('link_opened', (payload) => toast(t('toast.link_opened', { name: payload?.name ?? '' })));
  socket.on('media_added', (payload) => {
    const name = payload?.kind === 'video' ? 'videos' : 'pictures';
    markStale(name);
  });
}

function markStale(name) {
  state.stale[name] = true;
  if (state.tab === name) debounce(name, () => loadPanel(name));
}

function onInviteUpdated(update) {
  if (!update || update.case_id !== caseId) return;
  const invite = state.invites.find((i) => i.id === update.invite_id);
  if (!invite) {
    debounce('invites', refreshInvites);
  } else {
    mergeInvite({
      ...invite,
      status: update.status,
      pictures: update.pictures,
      videos: update.videos,
      resend_count: update.resend_count,
      closed_reason: update.closed_reason,
      actions: update.actions,
    });
  }
  markStale('log');
  if (update.change === 'media_added') {
    markStale('pictures');
    markStale('videos');
  } else if (update.change === 'status' || update.change === 'closed') {
    // Group headers in the media tabs show the status too.
    markStale('pictures');
    markStale('videos');
  }
}

boot().catch((error) => {
  console.error(error);
  showProblem(t('calls.heading'), t('error.generic'), true);
});
