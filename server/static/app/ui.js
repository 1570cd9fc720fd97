// DOM helpers, the live region and small formatters. No innerHTML with data: text only.

/** h("button", {type: "button", onclick}, "Label", child...) -> an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** Replace the main view's content and move focus to its heading (keyboard, screen readers). */
export function render(...children) {
  const view = $("#view");
  view.replaceChildren();
  append(view, children);
  const heading = view.querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  return view;
}

/** Say something through the polite live region (new messages, notifications). */
export function announce(text) {
  const live = $("#live");
  const line = h("p", {}, text);
  live.append(line);
  while (live.childElementCount > 5) live.firstElementChild.remove();
}

export function toast(text, kind = "info") {
  const box = $("#toasts");
  const item = h("p", { class: `toast ${kind}` }, text);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

export function errorText(error) {
  return error?.detail || error?.message || error?.title || String(error);
}

export function when(iso) {
  const date = new Date(iso);
  return h("time", { datetime: iso, title: date.toLocaleString() },
    date.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" }));
}

export function userLabel(user) {
  if (!user) return "someone";
  return user.display_name && user.display_name !== user.username
    ? `${user.display_name} (@${user.username})` : `@${user.username}`;
}

export function uid() {
  return crypto.randomUUID ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** A labelled form field: returns [label, control]. */
export function field(label, control) {
  if (!control.id) control.id = `f-${uid()}`;
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}
