// Calls to the console API (/_console/api/...). Every call but a GET carries the
// session's CSRF token in X-S3lite-CSRF; a 401 means the session is gone, so the page
// goes back to the login page.
const BASE = "/_console/api/";
let csrf = "";

export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(status, error, message) {
    super(message || `${error || "error"} (${status})`);
    this.status = status;
    this.error = error;
  }
}

export function apiUrl(path, query) {
  const search = query ? `?${new URLSearchParams(query)}` : "";
  return BASE + path + search;
}

function loggedOut() {
  location.replace("/_console/");
}

async function failure(response) {
  if (response.status === 401) loggedOut();
  const answer = await response.json().catch(() => ({}));
  return new ApiError(response.status, answer.error, answer.message);
}

function headers(method, extra = {}) {
  return method === "GET" ? { ...extra } : { ...extra, "X-S3lite-CSRF": csrf };
}

export async function api(method, path, { query, json } = {}) {
  const init = { method, credentials: "same-origin", headers: headers(method) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(apiUrl(path, query), init);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

// PUT a body with upload progress (fetch cannot report it): onProgress(bytes sent).
export function putWithProgress(path, query, body, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", apiUrl(path, query));
    request.setRequestHeader("X-S3lite-CSRF", csrf);
    request.responseType = "json";
    request.upload.onprogress = (progress) => onProgress(progress.loaded);
    request.onload = () => {
      if (request.status === 401) loggedOut();
      const answer = request.response || {};
      if (request.status >= 200 && request.status < 300) resolve(answer);
      else reject(new ApiError(request.status, answer.error, answer.message));
    };
    request.onerror = () => reject(new ApiError(0, "NetworkError", "the upload was cut off"));
    request.send(body);
  });
}

// POST and read the answer as NDJSON: onLine(object) for each line as it arrives.
export async function streamLines(path, json, onLine) {
  const response = await fetch(apiUrl(path), {
    method: "POST",
    credentials: "same-origin",
    headers: headers("POST", { "Content-Type": "application/json" }),
    body: JSON.stringify(json),
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    pending += decoder.decode(value || new Uint8Array(), { stream: !done });
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
    if (done) return;
  }
}
