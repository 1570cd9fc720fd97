// Tokens: access + refresh pair from /v1/auth/*, kept in sessionStorage (one user per tab, so
// two windows can be two users), refreshed before the access token expires. Refresh tokens
// rotate and a replayed one revokes its family: refreshes are single-flight.

const KEY = "hubbub.session";

export class Auth extends EventTarget {
  constructor() {
    super();
    this.session = null; // {user, access_token, refresh_token, expires_at (ms)}
    this.timer = null;
    this.inflight = null;
    try {
      this.session = JSON.parse(sessionStorage.getItem(KEY));
    } catch {
      this.session = null;
    }
    if (this.session) this.schedule();
  }

  get user() { return this.session?.user ?? null; }
  get signedIn() { return Boolean(this.session); }
  canRefresh() { return Boolean(this.session?.refresh_token); }

  async signup(fields) { return this.#start("/v1/auth/signup", fields); }
  async login(identifier, password) {
    return this.#start("/v1/auth/login", { identifier, password });
  }

  async #start(path, body) {
    const data = await post(path, body);
    this.#keep(data);
    return data.user;
  }

  #keep(data) {
    this.session = {
      user: data.user ?? this.session?.user,
      access_token: data.access_token,
      refresh_token: data.refresh_token,
      expires_at: Date.now() + (data.expires_in ?? 900) * 1000,
    };
    sessionStorage.setItem(KEY, JSON.stringify(this.session));
    this.schedule();
    this.dispatchEvent(new CustomEvent("token", { detail: data.access_token }));
  }

  /** Refresh at 80% of the access token's life (at least 5 s from now). */
  schedule() {
    clearTimeout(this.timer);
    if (!this.session) return;
    const left = this.session.expires_at - Date.now();
    const wait = Math.max(5000, left * 0.8);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), left <= 0 ? 0 : wait);
  }

  /** The current access token, refreshed first when it has expired. */
  async accessToken() {
    if (!this.session) return null;
    if (Date.now() > this.session.expires_at - 2000) await this.refresh();
    return this.session?.access_token ?? null;
  }

  refresh() {
    if (!this.session) return Promise.reject(new Error("signed out"));
    this.inflight ??= (async () => {
      try {
        this.#keep(await post("/v1/auth/refresh", { refresh_token: this.session.refresh_token }));
      } catch (error) {
        if (error.status === 401 || error.status === 400 || error.status === 422) this.expired();
        throw error;
      } finally {
        this.inflight = null;
      }
    })();
    return this.inflight;
  }

  /** The session is gone (revoked, expired): forget it and say so. */
  expired() {
    this.#clear();
    this.dispatchEvent(new Event("signedout"));
  }

  async logout() {
    const refresh = this.session?.refresh_token;
    this.#clear();
    if (refresh) await post("/v1/auth/logout", { refresh_token: refresh }).catch(() => {});
    this.dispatchEvent(new Event("signedout"));
  }

  #clear() {
    clearTimeout(this.timer);
    this.session = null;
    sessionStorage.removeItem(KEY);
  }
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(data?.errors?.map((e) => `${e.field}: ${e.message}`).join("; ")
      || data?.detail || data?.title || `HTTP ${response.status}`);
    error.status = response.status;
    error.code = data?.code;
    throw error;
  }
  return data;
}
