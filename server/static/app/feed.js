// Home feed (live `feed:new`), the composer (text + up to 10 images uploaded with progress),
// and post cards with like, comment, repost and quote.
import { announce, errorText, field, h, render, toast, userLabel, when } from "./ui.js";

const MAX_IMAGES = 10;

export function postCard(ctx, post, { onQuote } = {}) {
  const shown = post.repost_of ?? post;
  const likeButton = h("button", { type: "button", class: "like", "aria-pressed": String(shown.liked_by_me) },
    likeLabel(shown));
  const repostButton = h("button", { type: "button", "aria-pressed": String(shown.reposted_by_me) },
    `Repost (${shown.repost_count})`);
  const commentsButton = h("button", { type: "button", "aria-expanded": "false" },
    `Comments (${shown.comment_count})`);
  const comments = h("div", { class: "comments", hidden: true });

  likeButton.addEventListener("click", async () => {
    const liked = likeButton.getAttribute("aria-pressed") === "true";
    try {
      const state = liked ? await ctx.api.del(`/v1/posts/${shown.id}/like`)
        : await ctx.api.post(`/v1/posts/${shown.id}/like`);
      Object.assign(shown, { liked_by_me: state.liked, like_count: state.like_count });
      likeButton.setAttribute("aria-pressed", String(state.liked));
      likeButton.textContent = likeLabel(shown);
    } catch (error) { toast(errorText(error), "error"); }
  });
  repostButton.addEventListener("click", async () => {
    const reposted = repostButton.getAttribute("aria-pressed") === "true";
    try {
      if (reposted) await ctx.api.del(`/v1/posts/${shown.id}/repost`);
      else await ctx.api.post(`/v1/posts/${shown.id}/repost`);
      shown.repost_count += reposted ? -1 : 1;
      repostButton.setAttribute("aria-pressed", String(!reposted));
      repostButton.textContent = `Repost (${shown.repost_count})`;
    } catch (error) { toast(errorText(error), "error"); }
  });
  commentsButton.addEventListener("click", async () => {
    const open = commentsButton.getAttribute("aria-expanded") === "true";
    commentsButton.setAttribute("aria-expanded", String(!open));
    comments.hidden = open;
    if (!open) await loadComments(ctx, shown, comments, commentsButton);
  });

  return h("article", { class: "post", dataset: { postId: post.id }, "aria-label": `Post by ${shown.author.username}` },
    post.repost_of ? h("p", { class: "meta" }, `Reposted by @${post.author.username}`) : null,
    h("header", {},
      h("a", { href: `#/u/${encodeURIComponent(shown.author.username)}`, class: "author" }, userLabel(shown.author)),
      " · ", when(shown.created_at)),
    shown.text ? h("p", { class: "text" }, shown.text) : null,
    mediaGrid(shown.media),
    shown.quote_of ? h("blockquote", { class: "quote" },
      h("p", { class: "meta" }, `Quoting @${shown.quote_of.author.username}`),
      h("p", {}, shown.quote_of.text), mediaGrid(shown.quote_of.media)) : null,
    h("div", { class: "actions" }, likeButton, commentsButton, repostButton,
      h("button", { type: "button", onclick: () => (onQuote ?? ((p) => quoteDialog(ctx, p)))(shown) }, "Quote")),
    comments);
}

function likeLabel(post) { return `${post.liked_by_me ? "Unlike" : "Like"} (${post.like_count})`; }

function mediaGrid(media) {
  if (!media?.length) return null;
  return h("div", { class: `media n${Math.min(media.length, 4)}` },
    media.map((m, i) => h("a", { href: m.url, target: "_blank", rel: "noopener" },
      h("img", { src: m.thumbnail_url || m.url, alt: `Image ${i + 1} of ${media.length}`,
        width: m.width, height: m.height, loading: "lazy" }))));
}

async function loadComments(ctx, post, box, button) {
  box.replaceChildren(h("p", { class: "meta" }, "Loading…"));
  try {
    const page = await ctx.api.get(`/v1/posts/${post.id}/comments?limit=50`);
    const list = h("ul", { class: "comment-list" }, page.items.map(commentItem));
    const input = h("input", { name: "text", maxlength: 500, required: true, autocomplete: "off" });
    const form = h("form", { class: "inline" }, field("Write a comment", input),
      h("button", { type: "submit" }, "Comment"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const comment = await ctx.api.post(`/v1/posts/${post.id}/comments`, { text: input.value });
        list.append(commentItem(comment));
        input.value = "";
        post.comment_count += 1;
        button.textContent = `Comments (${post.comment_count})`;
      } catch (error) { toast(errorText(error), "error"); }
    });
    box.replaceChildren(list, form);
  } catch (error) { box.replaceChildren(h("p", { class: "error" }, errorText(error))); }
}

function commentItem(comment) {
  return h("li", {}, h("strong", {}, `@${comment.author.username}`), " ", comment.text, " · ",
    when(comment.created_at));
}

function quoteDialog(ctx, post) {
  const text = h("textarea", { name: "text", maxlength: 500, required: true, rows: 3 });
  const dialog = h("dialog", { class: "sheet", "aria-label": "Quote post" });
  const form = h("form", {},
    h("h3", {}, `Quote @${post.author.username}`),
    h("blockquote", { class: "quote" }, post.text),
    field("Your text", text),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Post quote"),
      h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await ctx.api.post("/v1/posts", { text: text.value, quote_of_id: post.id });
      toast("Quote posted");
      dialog.close();
    } catch (error) { toast(errorText(error), "error"); }
  });
  dialog.append(form);
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

/** The composer: text and up to 10 images, each uploaded (with its progress) when picked. */
export function composer(ctx, { onPosted } = {}) {
  const text = h("textarea", { name: "text", maxlength: 500, rows: 3, required: true,
    placeholder: "What's happening?" });
  const files = h("input", { type: "file", name: "images", accept: "image/png,image/jpeg,image/webp,image/gif", multiple: true });
  const uploads = h("ul", { class: "uploads", "aria-label": "Attached images" });
  const submit = h("button", { type: "submit" }, "Post");
  const status = h("p", { class: "meta", role: "status" });
  let pending = []; // {promise, media}

  files.addEventListener("change", () => {
    const picked = [...files.files];
    files.value = "";
    if (pending.length + picked.length > MAX_IMAGES) {
      toast(`At most ${MAX_IMAGES} images per post`, "error");
      picked.splice(MAX_IMAGES - pending.length);
    }
    for (const file of picked) {
      const progress = h("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
      const item = { media: null };
      const row = h("li", {},
        h("img", { src: URL.createObjectURL(file), alt: file.name, class: "thumb" }),
        h("span", {}, file.name), progress,
        h("button", { type: "button", class: "link", onclick: () => {
          pending = pending.filter((p) => p !== item);
          row.remove();
        } }, "Remove"));
      item.promise = ctx.api.upload(file, (f) => { progress.value = Math.round(f * 100); })
        .then((media) => { item.media = media; row.dataset.uploaded = "true"; return media; })
        .catch((error) => {
          row.dataset.failed = "true";
          toast(`${file.name}: ${errorText(error)}`, "error");
          pending = pending.filter((p) => p !== item);
          throw error;
        });
      pending.push(item);
      uploads.append(row);
    }
  });

  const form = h("form", { class: "composer", "aria-label": "New post" },
    field("New post", text), field(`Images (up to ${MAX_IMAGES})`, files), uploads,
    h("div", { class: "actions" }, submit), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      status.textContent = "Uploading…";
      const media = await Promise.all(pending.map((p) => p.promise));
      status.textContent = "Posting…";
      const post = await ctx.api.request("POST", "/v1/posts", {
        body: { text: text.value, media_ids: media.map((m) => m.id) },
        headers: { "Idempotency-Key": crypto.randomUUID() },
      });
      text.value = "";
      pending = [];
      uploads.replaceChildren();
      status.textContent = "Posted.";
      onPosted?.(post);
    } catch (error) {
      status.textContent = "";
      toast(errorText(error), "error");
    } finally { submit.disabled = false; }
  });
  return form;
}

export async function feedView(ctx) {
  const list = h("div", { class: "posts", id: "feed-list", "aria-live": "polite", "aria-busy": "true" });
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const seen = new Set();
  const add = (post, atTop) => {
    if (seen.has(post.id)) return;
    seen.add(post.id);
    const card = postCard(ctx, post);
    if (atTop) list.prepend(card); else list.append(card);
  };
  render(h("h2", {}, "Home"),
    composer(ctx, { onPosted: (post) => add(post, true) }),
    h("section", { "aria-label": "Home feed" }, list, more));
  let cursor = null;
  const load = async () => {
    const page = await ctx.api.get(`/v1/feed?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    page.items.forEach((post) => add(post, false));
    cursor = page.next_cursor;
    more.hidden = !cursor;
    list.setAttribute("aria-busy", "false");
  };
  more.addEventListener("click", () => load().catch((e) => toast(errorText(e), "error")));
  ctx.view(ctx.socket.on("feed:new", ({ post }) => {
    add(post, true);
    announce(`New post from @${post.author.username}`);
  }));
  await load();
}
