// Notifications: the unread badge (live from `notification` {notification, unread_count}) and
// the list (GET /v1/notifications marks what it returns read).
import { announce, errorText, h, render, toast, userLabel, when } from "./ui.js";

const TEXT = {
  follow: "followed you", like: "liked your post", comment: "commented on your post",
  repost: "reposted your post", quote: "quoted your post", mention: "mentioned you",
  message: "sent you a message", call_missed: "tried to call you",
  post_published: "Your scheduled post was published", post_failed: "Your scheduled post failed",
};

export function setBadge(count) {
  const badge = document.getElementById("notif-badge");
  badge.dataset.count = String(count);
  badge.textContent = String(count);
  badge.hidden = count <= 0;
  badge.setAttribute("aria-label", `${count} unread`);
}

function describe(n) {
  const what = TEXT[n.kind] ?? n.kind;
  return n.actor ? `${userLabel(n.actor)} ${what}` : what;
}

function item(n) {
  const link = n.post_id ? h("a", { href: `#/post/${n.post_id}` }, "view post")
    : n.kind === "follow" && n.actor ? h("a", { href: `#/u/${encodeURIComponent(n.actor.username)}` }, "view profile")
      : n.data?.room_id ? h("a", { href: `#/chat/${n.data.room_id}` }, "open chat") : null;
  return h("li", { class: n.read ? "read" : "unread", dataset: { kind: n.kind } },
    describe(n), " · ", when(n.created_at), link ? [" · ", link] : null);
}

export function startNotifications(ctx) {
  ctx.api.get("/v1/notifications/unread_count").then((r) => setBadge(r.count)).catch(() => {});
  ctx.socket.on("notification", ({ notification, unread_count: unread }) => {
    setBadge(unread);
    announce(`Notification: ${describe(notification)}`);
    document.getElementById("notif-list")?.prepend(item(notification));
  });
}

export async function notificationsView(ctx) {
  const list = h("ul", { class: "notifications", id: "notif-list", "aria-busy": "true" });
  render(h("h2", {}, "Notifications"), list);
  try {
    const page = await ctx.api.get("/v1/notifications?limit=50");
    list.append(...page.items.map(item));
    if (!page.items.length) list.append(h("li", { class: "meta" }, "Nothing yet."));
    const count = await ctx.api.get("/v1/notifications/unread_count");
    setBadge(count.count);
  } catch (error) { toast(errorText(error), "error"); }
  list.setAttribute("aria-busy", "false");
}
