// Profiles: follow / unfollow, message, call, their posts; your own profile can be edited.
import { openDirect } from "./chat.js";
import { postCard } from "./feed.js";
import { errorText, field, h, render, toast } from "./ui.js";

export async function profileView(ctx, ref) {
  const user = await ctx.api.get(`/v1/users/${ref.startsWith("@") ? "@" + encodeURIComponent(ref.slice(1)) : encodeURIComponent(ref)}`);
  const mine = user.id === ctx.auth.user.id;
  const counts = h("p", { class: "meta" }, `${user.follower_count} followers · ${user.following_count} following`);
  const follow = h("button", { type: "button", class: "primary", "aria-pressed": String(user.followed_by_me) },
    user.followed_by_me ? "Unfollow" : "Follow");
  follow.addEventListener("click", async () => {
    const following = follow.getAttribute("aria-pressed") === "true";
    try {
      if (following) await ctx.api.del(`/v1/users/${user.id}/follow`);
      else await ctx.api.post(`/v1/users/${user.id}/follow`);
      user.follower_count += following ? -1 : 1;
      follow.setAttribute("aria-pressed", String(!following));
      follow.textContent = following ? "Follow" : "Unfollow";
      counts.textContent = `${user.follower_count} followers · ${user.following_count} following`;
    } catch (error) { toast(errorText(error), "error"); }
  });
  const actions = mine ? editForm(ctx, user) : h("div", { class: "actions" }, follow,
    h("button", { type: "button", onclick: () => openDirect(ctx, user.id).catch((e) => toast(errorText(e), "error")) }, "Message"),
    h("button", { type: "button", onclick: () => ctx.call.start({ user_ids: [user.id], media: "video" }) }, "Video call"),
    user.follows_me ? h("span", { class: "meta" }, "Follows you") : null);
  const posts = h("div", { class: "posts", "aria-busy": "true" });
  render(h("h2", {}, user.display_name || `@${user.username}`),
    h("p", { class: "meta" }, `@${user.username}`),
    user.bio ? h("p", {}, user.bio) : null, counts, actions,
    h("h3", {}, "Posts"), posts);
  const page = await ctx.api.get(`/v1/users/${user.id}/posts?limit=20`);
  posts.append(...page.items.map((p) => postCard(ctx, p)));
  if (!page.items.length) posts.append(h("p", { class: "meta" }, "No posts yet."));
  posts.setAttribute("aria-busy", "false");
}

function editForm(ctx, user) {
  const name = h("input", { name: "display_name", value: user.display_name, maxlength: 50 });
  const bio = h("textarea", { name: "bio", rows: 2, maxlength: 500 }, user.bio);
  const form = h("form", { class: "inline", "aria-label": "Edit profile" },
    field("Display name", name), field("Bio", bio), h("button", { type: "submit" }, "Save"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await ctx.api.patch("/v1/users/me", { display_name: name.value, bio: bio.value });
      toast("Profile saved");
    } catch (error) { toast(errorText(error), "error"); }
  });
  return form;
}

export async function postView(ctx, id) {
  const post = await ctx.api.get(`/v1/posts/${id}`);
  render(h("h2", {}, "Post"), postCard(ctx, post));
}
