// Scheduled posts: schedule one (wall time in your time zone, priority), list them with their
// status, publish now or cancel.
import { errorText, field, h, render, toast, when } from "./ui.js";

export async function scheduledView(ctx) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const text = h("textarea", { name: "text", rows: 2, maxlength: 500, required: true });
  const at = h("input", { type: "datetime-local", name: "scheduled_for", required: true, step: 1 });
  const priority = h("select", { name: "priority" },
    ["normal", "high", "urgent", "low"].map((p) => h("option", { value: p }, p)));
  const form = h("form", { class: "composer", "aria-label": "Schedule a post" },
    field("Text", text), field(`When (${zone})`, at), field("Priority", priority),
    h("button", { type: "submit" }, "Schedule"));
  const list = h("ul", { class: "scheduled", "aria-live": "polite" });
  render(h("h2", {}, "Scheduled posts"), form, h("h3", {}, "Your scheduled posts"), list);

  const load = async () => {
    const page = await ctx.api.get("/v1/scheduled_posts?limit=50");
    list.replaceChildren(...page.items.map((s) => h("li", { dataset: { status: s.status } },
      h("strong", {}, s.status), " · ", s.text, " · ", when(s.scheduled_for), ` (${s.priority})`,
      s.targets?.some((t) => t.last_error) ? h("span", { class: "error" }, ` ${s.targets.map((t) => t.last_error).filter(Boolean).join("; ")}`) : null,
      s.status === "scheduled" ? [" ",
        h("button", { type: "button", onclick: () => act(() => ctx.api.post(`/v1/scheduled_posts/${s.id}/publish`)) }, "Publish now"),
        h("button", { type: "button", onclick: () => act(() => ctx.api.del(`/v1/scheduled_posts/${s.id}`)) }, "Cancel")] : null)));
    if (!page.items.length) list.append(h("li", { class: "meta" }, "None."));
  };
  const act = async (fn) => {
    try { await fn(); await load(); } catch (error) { toast(errorText(error), "error"); }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = at.value.length === 16 ? `${at.value}:00` : at.value;
    await act(() => ctx.api.post("/v1/scheduled_posts",
      { text: text.value, scheduled_for: value, timezone: zone, priority: priority.value }));
    text.value = "";
  });
  ctx.view(ctx.socket.on("notification", ({ notification }) => {
    if (notification.kind.startsWith("post_")) load().catch(() => {});
  }));
  await load();
}
