// The Socket.IO connection (vendored socket.io-client 4.x, window.io): auth with the current
// access token on every (re)connect, `auth:refresh` when the token rotates, acks as promises.

const ACK_TIMEOUT_MS = 10000;

export class Socket extends EventTarget {
  constructor(auth) {
    super();
    this.auth = auth;
    this.io = window.io({
      path: "/socket.io/",
      transports: ["websocket", "polling"],
      autoConnect: false,
      // A function: each reconnect presents the newest token.
      auth: (cb) => { this.auth.accessToken().then((token) => cb({ token }), () => cb({})); },
    });
    this.io.on("connect", () => this.#state("online"));
    this.io.on("disconnect", () => this.#state("offline"));
    this.io.io.on("reconnect_attempt", () => this.#state("reconnecting"));
    this.io.on("connect_error", async (error) => {
      this.#state("offline");
      if (error?.data?.code === "unauthorized" && this.auth.canRefresh()) {
        try {
          await this.auth.refresh();
          this.io.connect();
        } catch { /* signed out: main.js shows the login form */ }
      }
    });
    this.onToken = (event) => {
      if (this.io.connected) this.emit("auth:refresh", { token: event.detail }).catch(() => {});
    };
    auth.addEventListener("token", this.onToken);
  }

  connect() { this.io.connect(); }

  close() {
    this.auth.removeEventListener("token", this.onToken);
    this.io.disconnect();
  }

  get connected() { return this.io.connected; }

  /** Listen to a server event; returns a function that stops listening. */
  on(event, handler) {
    this.io.on(event, handler);
    return () => this.io.off(event, handler);
  }

  /** Emit with an ack: resolves with the ack's fields when ok, rejects with its error. */
  emit(event, data) {
    return new Promise((resolve, reject) => {
      this.io.timeout(ACK_TIMEOUT_MS).emit(event, data, (timeout, ack) => {
        if (timeout) reject(Object.assign(new Error(`${event}: no answer`), { code: "timeout" }));
        else if (ack?.ok) resolve(ack);
        else reject(Object.assign(new Error(ack?.error?.message || event), ack?.error || {}));
      });
    });
  }

  #state(state) {
    const conn = document.getElementById("conn");
    if (conn) {
      conn.dataset.state = state;
      conn.textContent = state;
    }
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
    if (state === "online") this.dispatchEvent(new Event("connected"));
  }
}
