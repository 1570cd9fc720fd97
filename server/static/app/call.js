// Calls: 1:1 and group (mesh) over WebRTC, ICE servers from /v1/calls/ice-servers, signaling
// over call:* events. Whoever is already in the call sends the offer when `call:accepted`
// names a newcomer; the newcomer answers. The panel's data-call-state says where it stands:
// idle, ringing, calling, connecting, connected, ended.
import { errorText, h, toast } from "./ui.js";

export class Calls {
  constructor(ctx) {
    this.ctx = ctx;
    this.panel = document.getElementById("call");
    this.call = null; // {id, media, stream, peers: Map<userId, peer>, incoming?}
    const on = (event, fn) => ctx.socket.on(event, (data) => fn.call(this, data));
    on("call:incoming", this.#incoming);
    on("call:accepted", this.#accepted);
    on("call:rejected", this.#rejected);
    on("call:left", ({ call_id: id, user_id: user }) => { if (id === this.call?.id) this.#drop(user); });
    on("call:ended", ({ call_id: id, reason }) => { if (id === this.call?.id) this.#end(`Call ended (${reason})`); });
    on("call:signal", this.#signal);
  }

  /** target: {user_ids: [id]} (1:1) or {room_id} (group), media: "video" | "audio". */
  async start(target) {
    if (this.call) return toast("You are already in a call", "error");
    try {
      this.call = { id: null, media: target.media, peers: new Map(), stream: null };
      this.#show("calling", "Calling…");
      await this.#prepare();
      const ack = await this.ctx.socket.emit("call:invite", target);
      this.call.id = ack.call_id;
      if (ack.busy?.length) toast("Some members are busy in another call");
    } catch (error) {
      this.#end(`Call failed: ${errorText(error)}`);
    }
  }

  async #prepare() {
    const { ice_servers: iceServers } = await this.ctx.api.get("/v1/calls/ice-servers");
    this.call.iceServers = iceServers;
    this.call.stream = await navigator.mediaDevices.getUserMedia(
      { audio: true, video: this.call.media === "video" });
    this.#render();
  }

  async #incoming({ call_id: id, from_user_id: from, media }) {
    if (this.call) {
      this.ctx.socket.emit("call:reject", { call_id: id }).catch(() => {});
      return;
    }
    const caller = await this.ctx.userById(from);
    this.call = { id, media, peers: new Map(), stream: null, incoming: true, from: caller };
    this.#show("ringing", `Incoming ${media} call from @${caller.username}`);
  }

  async accept() {
    const call = this.call;
    try {
      this.#show("connecting", "Connecting…");
      await this.#prepare();
      await this.ctx.socket.emit("call:accept", { call_id: call.id });
    } catch (error) {
      this.#end(`Could not join: ${errorText(error)}`);
    }
  }

  reject() {
    if (this.call?.id) this.ctx.socket.emit("call:reject", { call_id: this.call.id }).catch(() => {});
    this.#end();
  }

  hangup() {
    if (this.call?.id) this.ctx.socket.emit("call:hangup", { call_id: this.call.id }).catch(() => {});
    this.#end();
  }

  async #accepted({ call_id: id, user_id: user }) {
    if (id !== this.call?.id) return;
    if (this.panel.dataset.callState === "calling") this.#show("connecting", "Connecting…");
    const peer = this.#peer(user);
    peer.chain = peer.chain.then(async () => {
      const offer = await peer.pc.createOffer();
      await peer.pc.setLocalDescription(offer);
      await this.#send(user, "offer", { type: offer.type, sdp: offer.sdp });
    }).catch((error) => toast(`Call: ${errorText(error)}`, "error"));
  }

  #rejected({ call_id: id }) {
    if (id === this.call?.id && this.call.peers.size === 0 && !this.call.incoming) {
      toast("Call declined");
    }
  }

  #signal({ call_id: id, from_user_id: from, kind, payload }) {
    if (id !== this.call?.id || !this.call.stream) return;
    const peer = this.#peer(from);
    peer.chain = peer.chain.then(async () => {
      if (kind === "offer") {
        await peer.pc.setRemoteDescription(payload);
        const answer = await peer.pc.createAnswer();
        await peer.pc.setLocalDescription(answer);
        await this.#send(from, "answer", { type: answer.type, sdp: answer.sdp });
      } else if (kind === "answer") {
        await peer.pc.setRemoteDescription(payload);
      } else if (kind === "ice" && payload) {
        await peer.pc.addIceCandidate(payload);
      }
    }).catch((error) => toast(`Call: ${errorText(error)}`, "error"));
  }

  #send(to, kind, payload) {
    return this.ctx.socket.emit("call:signal", { call_id: this.call.id, to_user_id: to, kind, payload });
  }

  #peer(user) {
    let peer = this.call.peers.get(user);
    if (peer) return peer;
    const pc = new RTCPeerConnection({ iceServers: this.call.iceServers || [] });
    this.call.stream.getTracks().forEach((track) => pc.addTrack(track, this.call.stream));
    const video = h("video", { autoplay: true, playsinline: true, "aria-label": "Participant video" });
    const tile = h("figure", { class: "tile", dataset: { userId: user, peerState: "new" } }, video,
      h("figcaption", {}, "…"));
    this.ctx.userById(user).then((u) => {
      tile.querySelector("figcaption").textContent = `@${u.username}`;
      video.setAttribute("aria-label", `Video of @${u.username}`);
    });
    peer = { pc, tile, chain: Promise.resolve() };
    pc.addEventListener("icecandidate", ({ candidate }) => {
      if (candidate && this.call?.id) this.#send(user, "ice", candidate.toJSON()).catch(() => {});
    });
    pc.addEventListener("track", ({ streams }) => { video.srcObject = streams[0]; });
    pc.addEventListener("connectionstatechange", () => {
      tile.dataset.peerState = pc.connectionState;
      this.#updateState();
    });
    this.call.peers.set(user, peer);
    this.panel.querySelector(".tiles")?.append(tile);
    return peer;
  }

  #drop(user) {
    const peer = this.call.peers.get(user);
    if (!peer) return;
    peer.pc.close();
    peer.tile.remove();
    this.call.peers.delete(user);
    this.#updateState();
  }

  #updateState() {
    const states = [...this.call.peers.values()].map((p) => p.pc.connectionState);
    if (states.includes("connected")) this.#status("connected", "Connected");
    else if (states.length) this.#status("connecting", "Connecting…");
  }

  #show(state, text) {
    this.#render();
    this.#status(state, text);
    this.panel.hidden = false;
    this.panel.querySelector("button")?.focus();
  }

  #status(state, text) {
    this.panel.dataset.callState = state;
    const status = this.panel.querySelector(".call-status");
    if (status) status.textContent = text;
  }

  #render() {
    const call = this.call;
    const ringing = call.incoming && !call.stream;
    const local = h("video", { autoplay: true, playsinline: true, muted: true, class: "local",
      "aria-label": "Your camera" });
    local.muted = true;
    if (call.stream) local.srcObject = call.stream;
    const tiles = h("div", { class: "tiles" }, [...call.peers.values()].map((p) => p.tile));
    const state = this.panel.dataset.callState;
    this.panel.replaceChildren(
      h("h2", { id: "call-title" }, call.media === "audio" ? "Audio call" : "Video call"),
      h("p", { class: "call-status", role: "status" }, state),
      call.media === "video" && call.stream ? local : null, tiles,
      h("div", { class: "actions" },
        ringing ? h("button", { type: "button", class: "primary", onclick: () => this.accept() }, "Accept") : null,
        ringing ? h("button", { type: "button", onclick: () => this.reject() }, "Decline") : null,
        ringing ? null : h("button", { type: "button", class: "danger", onclick: () => this.hangup() }, "Hang up")));
  }

  #end(message) {
    const call = this.call;
    this.call = null;
    if (call) {
      call.peers.forEach((p) => p.pc.close());
      call.stream?.getTracks().forEach((t) => t.stop());
    }
    this.panel.dataset.callState = "idle";
    this.panel.hidden = true;
    this.panel.replaceChildren();
    if (message) toast(message);
  }
}
