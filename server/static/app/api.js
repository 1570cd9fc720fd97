// REST client for /v1: bearer token, one refresh-and-retry on 401, problem details as errors,
// and media upload with progress (XMLHttpRequest upload events).

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
    this.detail = problem?.detail;
    this.errors = problem?.errors || [];
  }
}

export class Api {
  /** auth: an Auth (auth.js): accessToken() and refresh(). */
  constructor(auth) {
    this.auth = auth;
  }

  async request(method, path, { body, headers = {}, retry = true, anonymous = false } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (!anonymous) {
      const token = await this.auth.accessToken();
      if (token) init.headers.Authorization = `Bearer ${token}`;
    }
    const response = await fetch(path, init);
    if (response.status === 401 && retry && !anonymous && this.auth.canRefresh()) {
      await this.auth.refresh();
      return this.request(method, path, { body, headers, retry: false });
    }
    if (response.status === 204) return null;
    const data = response.headers.get("Content-Type")?.includes("json")
      ? await response.json() : null;
    if (!response.ok) {
      if (response.status === 401 && !anonymous) this.auth.expired();
      throw new ApiError(response.status, data);
    }
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, { body: body ?? {} }); }
  patch(path, body) { return this.request("PATCH", path, { body }); }
  del(path) { return this.request("DELETE", path); }

  /** POST /v1/media (multipart, one `file`) -> Media; onProgress(fraction 0..1). */
  async upload(file, onProgress = () => {}) {
    const token = await this.auth.accessToken();
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/media");
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Idempotency-Key", crypto.randomUUID());
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(xhr.response);
        } else {
          reject(new ApiError(xhr.status, xhr.response));
        }
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, { detail: "Network error" })));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }
}
