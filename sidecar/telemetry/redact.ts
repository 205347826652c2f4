// What configuration may show of itself: a URL's user and password never reach /config or a log line.

/** `url` without a user or password in it (a tracing endpoint's credentials). */
export function withoutUserinfo(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}
