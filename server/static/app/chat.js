// Chat: the room list, and a room with history paging, live messages, typing, read receipts
// and presence; after a reconnect `room:join` with since_seq catches up on what was missed.
import { announce, errorText, field, h, render, toast, uid, when } from "./ui.js";

const TYPING_SEND_EVERY_MS = 3000;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOW_MS = 6000;

export async function userById(ctx, id) {
  ctx.users ??= new Map();
  if (!ctx.users.has(id)) {
    ctx.users.set(id, ctx.api.get(`/v1/users/${id}`).catch(() => ({ id, username: id.slice(0, 8) })));
  }
  return ctx.users.get(id);
}

function roomTitle(ctx, room, members) {
  if (room.name) return room.name;
  const others = members.filter((m) => m.id !== ctx.auth.user.id);
  return others.map((m) => `@${m.username}`).join(", ") || "Just you";
}

export async function openDirect(ctx, userId) {
  const room = await ctx.api.post("/v1/rooms", { kind: "direct", member_ids: [userId] });
  ctx.navigate(`#/chat/${room.id}`);
}

export async function roomsView(ctx) {
  const list = h("ul", { class: "rooms", "aria-busy": "true" });
  const names = h("input", { name: "members", placeholder: "alice, bob", required: true });
  const name = h("input", { name: "name", maxlength: 100 });
  const form = h("form", { class: "inline", "aria-label": "New group" },
    field("Members (usernames, comma-separated)", names), field("Group name", name),
    h("button", { type: "submit" }, "Create group"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const users = await Promise.all(names.value.split(",").map((n) => n.trim().replace(/^@/, ""))
        .filter(Boolean).map((n) => ctx.api.get(`/v1/users/@${encodeURIComponent(n)}`)));
      const room = await ctx.api.post("/v1/rooms", { kind: "group", member_ids: users.map((u) => u.id),
        name: name.value || undefined });
      ctx.navigate(`#/chat/${room.id}`);
    } catch (error) { toast(errorText(error), "error"); }
  });
  render(h("h2", {}, "Chats"), list, h("h3", {}, "New group chat"), form);
  const page = await ctx.api.get("/v1/rooms?limit=100");
  for (const room of page.items) {
    const members = await Promise.all(room.member_ids.map((id) => userById(ctx, id)));
    list.append(h("li", {}, h("a", { href: `#/chat/${room.id}` },
      h("strong", {}, roomTitle(ctx, room, members)),
      room.unread_count ? h("span", { class: "badge" }, `${room.unread_count} unread`) : null,
      room.last_message ? h("span", { class: "meta" }, ` ${room.last_message.text.slice(0, 60)}`) : null)));
  }
  if (!page.items.length) list.append(h("li", { class: "meta" }, "No chats yet: open a profile and press Message."));
  list.setAttribute("aria-busy", "false");
}

export async function roomView(ctx, roomId) {
  const me = ctx.auth.user.id;
  const room = await ctx.api.get(`/v1/rooms/${roomId}`);
  const members = await Promise.all(room.member_ids.map((id) => userById(ctx, id)));
  const others = members.filter((m) => m.id !== me);
  const byId = new Map(members.map((m) => [m.id, m]));
  const messages = h("ol", { class: "messages", id: "messages", "aria-live": "polite", "aria-relevant": "additions",
    "aria-label": "Messages" });
  const older = h("button", { type: "button", class: "link" }, "Load older messages");
  const typing = h("p", { class: "typing", id: "typing", "aria-live": "polite" });
  const presence = h("ul", { class: "presence", "aria-label": "Members" },
    others.map((m) => h("li", { dataset: { userId: m.id, status: "offline" } },
      h("span", { class: "dot", "aria-hidden": "true" }), `@${m.username} `,
      h("span", { class: "status" }, "offline"))));
  const input = h("input", { name: "text", autocomplete: "off", maxlength: 4000, required: true,
    placeholder: "Write a message" });
  const form = h("form", { class: "send" }, field("Message", input), h("button", { type: "submit" }, "Send"));
  const media = room.kind === "direct" && others.length === 1 ? { user_ids: [others[0].id] } : { room_id: room.id };
  const calls = h("div", { class: "actions" },
    h("button", { type: "button", onclick: () => ctx.call.start({ ...media, media: "video" }) }, "Video call"),
    h("button", { type: "button", onclick: () => ctx.call.start({ ...media, media: "audio" }) }, "Audio call"));
  render(h("h2", {}, room.name || others.map((m) => `@${m.username}`).join(", ") || "Chat"),
    h("div", { class: "room-head" }, presence, calls), older, messages, typing, form);

  let lastSeq = 0;
  let firstSeq = Infinity;
  const readBy = new Map(); // user id -> highest seq they read
  const shown = new Set();

  const receipt = (message) => {
    const seenBy = others.filter((m) => (readBy.get(m.id) ?? 0) >= message.seq);
    if (!seenBy.length) return "Sent";
    return room.kind === "direct" ? "Seen" : `Seen by ${seenBy.map((m) => `@${m.username}`).join(", ")}`;
  };
  const item = (message) => {
    const mine = message.sender_id === me;
    const sender = byId.get(message.sender_id);
    return h("li", { class: `message${mine ? " mine" : ""}${message.kind === "system" ? " system" : ""}`,
      dataset: { seq: message.seq, mine: String(mine) } },
      h("span", { class: "who" }, mine ? "You" : `@${sender?.username ?? "someone"}`), " ",
      h("span", { class: "body" }, message.text), " ",
      when(message.created_at),
      mine ? h("span", { class: "receipt", dataset: { seq: message.seq } }, receipt(message)) : null);
  };
  const add = (list, { prepend = false } = {}) => {
    const fresh = list.filter((m) => !shown.has(m.seq)).sort((a, b) => a.seq - b.seq);
    if (!fresh.length) return;
    fresh.forEach((m) => shown.add(m.seq));
    const nodes = fresh.map(item);
    if (prepend) messages.prepend(...nodes); else messages.append(...nodes);
    firstSeq = Math.min(firstSeq, fresh[0].seq);
    lastSeq = Math.max(lastSeq, fresh.at(-1).seq);
    older.hidden = firstSeq <= 1;
    if (!prepend) {
      messages.lastElementChild?.scrollIntoView({ block: "end" });
      markRead();
    }
  };
  const refreshReceipts = () => {
    for (const span of messages.querySelectorAll(".receipt")) {
      span.textContent = receipt({ seq: Number(span.dataset.seq) });
    }
  };
  let readSent = 0;
  const markRead = () => {
    if (document.visibilityState !== "visible" || lastSeq <= readSent) return;
    readSent = lastSeq;
    ctx.socket.emit("message:read", { room_id: roomId, seq: lastSeq }).catch(() => {});
  };

  const page = await ctx.api.get(`/v1/rooms/${roomId}/messages?limit=50`);
  add(page.items);
  older.addEventListener("click", async () => {
    try {
      const before = await ctx.api.get(`/v1/rooms/${roomId}/messages?limit=50&before_seq=${firstSeq}`);
      add(before.items, { prepend: true });
      if (!before.items.length) older.hidden = true;
    } catch (error) { toast(errorText(error), "error"); }
  });

  const join = async () => {
    try {
      const ack = await ctx.socket.emit("room:join",
        lastSeq ? { room_id: roomId, since_seq: lastSeq } : { room_id: roomId });
      add(ack.missed || []);
      const subscribed = await ctx.socket.emit("presence:subscribe", { user_ids: others.map((m) => m.id) });
      (subscribed.presence || []).forEach(setPresence);
      markRead();
    } catch (error) { toast(`Could not join the room: ${errorText(error)}`, "error"); }
  };
  const setPresence = (p) => {
    const li = presence.querySelector(`[data-user-id="${p.user_id}"]`);
    if (!li) return;
    li.dataset.status = p.status;
    li.querySelector(".status").textContent = p.status;
  };

  const typers = new Map(); // user id -> timer
  const showTyping = () => {
    const names = [...typers.keys()].map((id) => `@${byId.get(id)?.username ?? "someone"}`);
    typing.textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
  };
  ctx.view(ctx.socket.on("typing", ({ room_id: rid, user_id: user, active }) => {
    if (rid !== roomId || user === me) return;
    clearTimeout(typers.get(user));
    if (active) typers.set(user, setTimeout(() => { typers.delete(user); showTyping(); }, TYPING_SHOW_MS));
    else typers.delete(user);
    showTyping();
  }));
  ctx.view(ctx.socket.on("message:new", ({ message }) => {
    if (message.room_id !== roomId) return;
    clearTimeout(typers.get(message.sender_id));
    typers.delete(message.sender_id);
    showTyping();
    add([message]);
    if (message.sender_id !== me) announce(`@${byId.get(message.sender_id)?.username ?? "someone"}: ${message.text}`);
  }));
  ctx.view(ctx.socket.on("message:read", ({ room_id: rid, user_id: user, seq }) => {
    if (rid !== roomId || user === me) return;
    readBy.set(user, Math.max(readBy.get(user) ?? 0, seq));
    refreshReceipts();
  }));
  ctx.view(ctx.socket.on("presence", setPresence));
  const onConnected = () => join();
  ctx.socket.addEventListener("connected", onConnected);
  ctx.view(() => ctx.socket.removeEventListener("connected", onConnected));
  const onVisible = () => markRead();
  document.addEventListener("visibilitychange", onVisible);
  ctx.view(() => document.removeEventListener("visibilitychange", onVisible));

  let typingSentAt = 0;
  let idle = null;
  const sendTyping = (active) => ctx.socket.emit("typing", { room_id: roomId, active }).catch(() => {});
  input.addEventListener("input", () => {
    const now = Date.now();
    if (input.value && now - typingSentAt > TYPING_SEND_EVERY_MS) {
      typingSentAt = now;
      sendTyping(true);
    }
    clearTimeout(idle);
    idle = setTimeout(() => { typingSentAt = 0; sendTyping(false); }, TYPING_IDLE_MS);
  });
  ctx.view(() => {
    clearTimeout(idle);
    typers.forEach((t) => clearTimeout(t));
    ctx.socket.emit("room:leave", { room_id: roomId }).catch(() => {});
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    clearTimeout(idle);
    typingSentAt = 0;
    sendTyping(false);
    try {
      const ack = await ctx.socket.emit("message:send", { room_id: roomId, client_id: uid(), text });
      add([ack.message]);
    } catch (error) {
      input.value = text;
      toast(errorText(error), "error");
    }
    input.focus();
  });
  if (ctx.socket.connected) await join();
  input.focus();
}
