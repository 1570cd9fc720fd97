// Boot and routing (#/feed, #/u/<username>, #/chat, #/chat/<room>, #/notifications,
// #/scheduled, #/me, #/post/<id>). Each view registers its cleanups with ctx.view(fn); they
// run when the next view replaces it.
import { Api } from "./api.js";
import { Auth } from "./auth.js";
import { Calls } from "./call.js";
import { roomsView, roomView, userById } from "./chat.js";
import { feedView } from "./feed.js";
import { notificationsView, startNotifications } from "./notifications.js";
import { postView, profileView } from "./profile.js";
import { scheduledView } from "./schedule.js";
import { Socket } from "./socket.js";
import { $, errorText, field, h, render, toast } from "./ui.js";

const auth = new Auth();
const api = new Api(auth);
let ctx = null;
let cleanups = [];

function authView() {
  $("#top").hidden = true;
  const tabs = { signup: "Sign up", login: "Log in" };
  let mode = "signup";
  const box = h("div", { class: "auth" });
  const draw = () => {
    const username = h("input", { name: "username", autocomplete: "username", required: true,
      pattern: "[A-Za-z0-9_]{3,30}", title: "3-30 letters, digits or _" });
    const email = h("input", { name: "email", type: "email", autocomplete: "email", required: true });
    const identifier = h("input", { name: "identifier", autocomplete: "username", required: true });
    const password = h("input", { name: "password", type: "password", required: true, minlength: 8,
      autocomplete: mode === "signup" ? "new-password" : "current-password" });
    const error = h("p", { class: "error", role: "alert" });
    const form = h("form", { "aria-label": tabs[mode] },
      mode === "signup" ? [field("Username", username), field("Email", email)] : field("Username or email", identifier),
      field("Password", password), error,
      h("button", { type: "submit", class: "primary" }, tabs[mode]));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      try {
        if (mode === "signup") await auth.signup({ username: username.value, email: email.value, password: password.value });
        else await auth.login(identifier.value, password.value);
        start();
      } catch (e) { error.textContent = errorText(e); }
    });
    box.replaceChildren(
      h("div", { class: "tabs", role: "group", "aria-label": "Account" }, Object.entries(tabs).map(([key, label]) =>
        h("button", { type: "button", "aria-pressed": String(key === mode), onclick: () => { mode = key; draw(); } }, label))),
      form);
  };
  draw();
  render(h("h2", {}, "Welcome to Hubbub"), box);
}

function start() {
  $("#top").hidden = false;
  const socket = new Socket(auth);
  ctx = {
    auth, api, socket, users: new Map(),
    navigate: (hash) => { if (location.hash === hash) route(); else location.hash = hash; },
    view: (cleanup) => cleanups.push(cleanup),
  };
  ctx.userById = (id) => userById(ctx, id);
  ctx.call = new Calls(ctx);
  startNotifications(ctx);
  socket.connect();
  $("#me-link").textContent = `@${auth.user.username}`;
  if (!location.hash || location.hash === "#/") location.hash = "#/feed";
  else route();
}

async function route() {
  if (!ctx) return;
  cleanups.splice(0).forEach((fn) => { try { fn(); } catch { /* view already gone */ } });
  const [, name = "feed", arg] = location.hash.split("/");
  document.querySelectorAll("[data-nav]").forEach((a) => {
    if (a.dataset.nav === name) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  try {
    switch (name) {
      case "feed": return await feedView(ctx);
      case "u": return await profileView(ctx, `@${decodeURIComponent(arg)}`);
      case "me": return await profileView(ctx, auth.user.id);
      case "post": return await postView(ctx, arg);
      case "chat": return await (arg ? roomView(ctx, arg) : roomsView(ctx));
      case "notifications": return await notificationsView(ctx);
      case "scheduled": return await scheduledView(ctx);
      default: return await feedView(ctx);
    }
  } catch (error) {
    render(h("h2", {}, "Something went wrong"), h("p", { class: "error" }, errorText(error)));
  }
}

window.addEventListener("hashchange", route);
$("#find-user").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("#find-input").value.trim().replace(/^@/, "");
  if (name) ctx?.navigate(`#/u/${encodeURIComponent(name)}`);
});
$("#logout").addEventListener("click", () => auth.logout());
auth.addEventListener("signedout", () => {
  cleanups.splice(0).forEach((fn) => { try { fn(); } catch { /* ignore */ } });
  ctx?.socket.close();
  ctx = null;
  toast("Signed out");
  authView();
});

if (auth.signedIn) start(); else authView();
