/* lamson web: the pages (docs/design.md, "lamson web"; the API they use is in docs/web.md).
 *
 * One page, hash routes, plain JavaScript with no build step and nothing fetched from elsewhere: the
 * server's Content-Security-Policy is default-src 'self', so there is no inline script, no inline
 * style attribute and no eval here, and every piece of mail text reaches the page through
 * textContent (never innerHTML). Everything shown comes from the JSON API under /api, the same API
 * the tests and scripts use. Mail HTML is never put into this page: it is shown in a sandboxed
 * iframe (no scripts, no same origin) loading the server's sanitised copy.
 *
 * Routes: #/inbox[/{mailbox}][?q=...], #/m/{mailbox}/{key}, #/compose[?reply={mailbox}/{key}],
 * #/pipeline. Elements people click and rows the tests look for carry a data-testid.
 */
"use strict";

(function () {
  const view = document.getElementById("view");
  const banner = document.querySelector("[data-testid=error]");
  const liveStatus = document.querySelector("[data-testid=live-status]");
  const session = { csrf: "", app: "", version: "" };

  /* ---------- small helpers ---------- */

  /** An element with attributes and children; text always goes in as text nodes. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  const SVGNS = "http://www.w3.org/2000/svg";

  /** An SVG element (the rates chart is drawn with these). */
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVGNS, tag);
    setAttrs(el, attrs);
    append(el, children);
    return el;
  }

  function setAttrs(el, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "testid") el.setAttribute("data-testid", v);
      else if (k === "text") el.textContent = String(v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(el, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(el, c);
      else if (c instanceof Node) el.appendChild(c);
      else el.appendChild(document.createTextNode(String(c)));
    }
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  /** Makes ``old``'s children look like ``fresh``'s, reusing the nodes that can stay (see morph). */
  function morphChildren(old, fresh) {
    const olds = [...old.childNodes];
    const news = [...fresh.childNodes];
    if (olds.length !== news.length) {
      clear(old);
      append(old, news);
      return;
    }
    olds.forEach((o, i) => {
      if (!morph(o, news[i])) old.replaceChild(news[i], o);
    });
  }

  /** True when ``old`` could be kept (same kind, tag and attributes), its text and children updated. */
  function morph(old, fresh) {
    if (old.nodeType !== fresh.nodeType || old.nodeName !== fresh.nodeName) return false;
    if (old.nodeType === Node.TEXT_NODE) {
      if (old.data !== fresh.data) old.data = fresh.data;
      return true;
    }
    if (old.nodeType !== Node.ELEMENT_NODE || old.attributes.length !== fresh.attributes.length) return false;
    for (const attr of fresh.attributes) {
      if (old.getAttribute(attr.name) !== attr.value) return false;
    }
    morphChildren(old, fresh);
    return true;
  }

  function debounce(fn, ms) {
    let timer = null;
    const wrapped = (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
    wrapped.cancel = () => clearTimeout(timer);
    return wrapped;
  }

  /** ``fn`` at most once per ``ms``, at the end of the window: unlike a debounce it still runs while
   * calls keep coming (live events under steady traffic). */
  function throttle(fn, ms) {
    let timer = null;
    const wrapped = () => {
      if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          fn();
        }, ms);
      }
    };
    wrapped.cancel = () => {
      clearTimeout(timer);
      timer = null;
    };
    return wrapped;
  }

  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** A mailbox name (which may hold "/", a folder under run/) and key as URL path segments. */
  function segs(mailbox, key) {
    const parts = String(mailbox).split("/");
    if (key !== undefined) parts.push(key);
    return parts.map(encodeURIComponent).join("/");
  }

  const messageHref = (m) => "#/m/" + segs(m.mailbox, m.key);
  const apiMessage = (mailbox, key) => "/api/messages/" + segs(mailbox, key);

  /** "42 s", "3 min", "2 h 5 min", "4 d": how long ago, or how long for. */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const t = Math.max(0, Math.floor(seconds));
    if (t < 60) return t + " s";
    if (t < 3600) return Math.floor(t / 60) + " min";
    if (t < 86400) {
      const m = Math.floor((t % 3600) / 60);
      return Math.floor(t / 3600) + " h" + (m ? " " + m + " min" : "");
    }
    return Math.floor(t / 86400) + " d";
  }

  const ago = (ts) => duration(Date.now() / 1000 - ts);

  function formatDate(m) {
    const d = m.timestamp ? new Date(m.timestamp * 1000) : new Date(m.date);
    return isNaN(d.getTime()) ? String(m.date || "") : d.toLocaleString();
  }

  function size(n) {
    if (n === null || n === undefined) return "";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / 1024 / 1024).toFixed(1) + " MB";
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

  function showError(message) {
    banner.textContent = "";
    append(banner, [
      h("span", { testid: "error-text" }, message),
      h("button", { type: "button", class: "link", testid: "error-close", onclick: () => (banner.hidden = true) }, "dismiss"),
    ]);
    banner.hidden = false;
  }

  /* ---------- the API ---------- */

  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }

  /** A JSON call; POSTs carry the CSRF token (lamson.web.security). Errors raise with the server's sentence. */
  async function api(path, options = {}) {
    const method = options.method || "GET";
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET") headers["X-CSRF-Token"] = session.csrf || cookie("lamson_csrf");
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError("lamson web is not answering (" + e.message + ")", 0);
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) {
      const sentence = data && data.error ? data.error : res.status + " " + res.statusText;
      throw new ApiError(sentence, res.status);
    }
    return data;
  }

  async function loadSession() {
    try {
      const data = await api("/api/session");
      session.csrf = data.csrf || "";
      session.app = data.app || "";
      session.version = data.version || "";
      document.querySelector("[data-testid=app-name]").textContent = session.app;
      document.querySelector("[data-testid=brand]").title = "Lamson " + session.version;
      document.title = session.app ? "Lamson · " + session.app : "Lamson";
    } catch (e) {
      showError("Could not start a session: " + e.message);
    }
  }

  /* ---------- live updates (server-sent events) ---------- */

  let current = null; // the view on screen: {cleanup, onMessage, onReconnect}

  function connectEvents() {
    if (!window.EventSource) {
      liveStatus.textContent = "no live updates";
      return;
    }
    const source = new EventSource("/api/events");
    let wasDown = false;
    source.addEventListener("open", () => {
      liveStatus.textContent = "live";
      liveStatus.className = "live on";
      if (wasDown && current && current.onReconnect) current.onReconnect();
      wasDown = false;
    });
    source.addEventListener("error", () => {
      liveStatus.textContent = "reconnecting";
      liveStatus.className = "live off";
      wasDown = true;
    });
    source.addEventListener("message", (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (current && current.onMessage) current.onMessage(data);
    });
  }

  /* ---------- routing ---------- */

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, "");
    const q = raw.indexOf("?");
    const path = q >= 0 ? raw.slice(0, q) : raw;
    const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : "");
    const parts = path.split("/").filter((p) => p !== "").map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (e) {
        return p;
      }
    });
    return { parts, params };
  }

  function route() {
    if (current && current.cleanup) current.cleanup();
    current = null;
    banner.hidden = true;
    clear(view);
    const { parts, params } = parseHash();
    const name = parts[0] || "inbox";
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === name || (name === "m" && a.dataset.nav === "inbox"));
    }
    if (name === "m" && parts.length >= 3) {
      current = messageView(parts.slice(1, -1).join("/"), parts[parts.length - 1]);
    } else if (name === "compose") {
      current = composeView(params);
    } else if (name === "pipeline") {
      current = pipelineView();
    } else {
      current = inboxView(parts.slice(1).join("/") || "all", params);
    }
    window.scrollTo(0, 0);
  }

  /* ---------- inbox ---------- */

  function mailboxSidebar(active, onTitle) {
    const list = h("ul", { class: "mailboxes", testid: "mailboxes" });
    const aside = h("aside", { class: "sidebar" }, h("h2", {}, "Mailboxes"), list);
    const kinds = { log: "Replies", sent: "Sent", parked: "Parked", bounced: "Bounced", spam: "Spam", queue: "Queue" };

    function item(name, title, count, kind) {
      return h("li", {},
        h("a", {
          href: "#/inbox/" + segs(name),
          class: "mailbox" + (name === active ? " active" : ""),
          testid: "mailbox-" + name,
          "data-mailbox": name,
          title: kind ? kinds[kind] || kind : null,
        },
        h("span", { class: "mailbox-title" }, title),
        count === null ? null : h("span", { class: "count", testid: "mailbox-count-" + name }, String(count))));
    }

    async function refresh() {
      try {
        const data = await api("/api/mailboxes");
        const total = data.mailboxes.reduce((n, m) => n + (m.count || 0), 0);
        const fresh = h("ul", {}, item("all", "All mail", total, null),
          data.mailboxes.map((m) => item(m.name, m.title || m.name, m.count, m.kind)));
        morphChildren(list, fresh); // only the counts change as mail arrives: the links stay put
        const mine = data.mailboxes.find((m) => m.name === active);
        if (mine && onTitle) onTitle(mine.title || mine.name);
      } catch (e) {
        clear(list);
        list.appendChild(h("li", { class: "muted" }, e.message));
      }
    }
    refresh();
    return { element: aside, refresh: throttle(refresh, 500) };
  }

  function messageRow(m, showMailbox) {
    const who = m.from_app ? "to " + (m.to || "?") : m.from || "?";
    return h("a", {
      class: "row" + (m.from_app ? " from-app" : ""),
      href: messageHref(m),
      testid: "message-row",
      "data-id": m.id,
      "data-ts": m.timestamp,
    },
    h("span", { class: "who", title: "From " + m.from + " to " + m.to, testid: "row-from" }, who),
    h("span", { class: "what" },
      h("span", { class: "subject", testid: "row-subject" }, m.subject || "(no subject)"),
      h("span", { class: "snippet" }, m.reason ? "Parked: " + m.reason : m.snippet || "")),
    h("span", { class: "tags" },
      showMailbox ? h("span", { class: "tag" }, m.mailbox) : null,
      m.attachments ? h("span", { class: "tag", title: "attachments" }, m.attachments + (m.attachments > 1 ? " files" : " file")) : null,
      m.has_html ? h("span", { class: "tag" }, "html") : null),
    h("span", { class: "age", "data-ts": m.timestamp, title: formatDate(m) }, ago(m.timestamp)));
  }

  function inboxView(mailbox, params) {
    let query = params.get("q") || "";
    const heading = h("h1", { testid: "list-title" }, mailbox === "all" ? "All mail" : mailbox);
    const sidebar = mailboxSidebar(mailbox, (title) => (heading.textContent = title));
    const search = h("input", {
      type: "search", class: "search", placeholder: "Search: words, from:x to:x subject:x",
      value: query, testid: "search", "aria-label": "Search mail",
    });
    const stats = h("span", { class: "stats", testid: "list-stats" });
    const list = h("div", { class: "list", testid: "message-list" });
    const empty = h("p", { class: "empty", testid: "list-empty", hidden: true });
    const older = h("button", { type: "button", class: "older", testid: "older", hidden: true }, "Older messages");
    view.appendChild(h("div", { class: "layout" }, sidebar.element,
      h("section", { class: "content" },
        h("div", { class: "toolbar" }, heading, search, stats),
        list, empty, older)));

    let next = null;
    let total = 0;
    let generation = 0; // a newer load makes older answers stale
    let loaded = false;
    const early = []; // live events that arrived before the first page
    const shown = new Set();

    function place(m, live) {
      if (shown.has(m.id)) return;
      shown.add(m.id);
      const row = messageRow(m, mailbox === "all");
      if (live) {
        row.classList.add("new");
        let before = null;
        for (const other of list.children) {
          if (Number(other.dataset.ts) < m.timestamp) {
            before = other;
            break;
          }
        }
        total += 1;
        // Older than every row shown while older pages exist: it belongs to one of those pages.
        if (before === null && next) {
          shown.delete(m.id);
          return;
        }
        list.insertBefore(row, before);
      } else {
        list.appendChild(row);
      }
      empty.hidden = true;
    }

    let indexingTimer = null;
    let indexingLeft = 0; // from the last page loaded; a live event keeps the note

    function showStats(took, indexing = indexingLeft) {
      indexingLeft = indexing;
      const words = total === 1 ? "1 message" : total + " messages";
      stats.textContent = query ? words + " found in " + Number(took).toFixed(1) + " ms" : words;
      if (query) stats.setAttribute("data-took", String(took));
      // A first indexing of a large Maildir goes on in the background: say so, and look again soon.
      if (indexing > 0) {
        stats.textContent += " · indexing, " + indexing + " more to come";
        stats.setAttribute("data-indexing", String(indexing));
      } else {
        stats.removeAttribute("data-indexing");
      }
    }

    async function load(append) {
      const mine = append ? generation : ++generation;
      const url = new URLSearchParams({ mailbox, q: query, limit: "50" });
      if (append && next) url.set("before", next);
      older.disabled = true;
      try {
        const data = await api("/api/messages?" + url.toString());
        if (mine !== generation) return;
        if (!append) {
          clear(list);
          shown.clear();
        }
        for (const m of data.messages) place(m, false);
        next = data.next;
        total = data.total;
        showStats(data.took_ms, data.indexing || 0);
        clearTimeout(indexingTimer);
        if (data.indexing > 0 && !append) {
          indexingTimer = setTimeout(() => {
            if (list.isConnected && mine === generation) {
              sidebar.refresh();
              load(false);
            }
          }, 1000);
        }
        older.hidden = !next;
        empty.hidden = list.children.length > 0;
        empty.textContent = query ? "Nothing matches “" + query + "”." : "No mail here yet.";
        if (!loaded) {
          loaded = true;
          for (const ev of early.splice(0)) onMessage(ev);
        }
      } catch (e) {
        if (mine !== generation) return;
        clear(list);
        empty.hidden = false;
        empty.textContent = e.message;
      } finally {
        older.disabled = false;
      }
    }

    const research = debounce(() => {
      const q = search.value.trim();
      if (q === query) return;
      query = q;
      const hash = "#/inbox" + (mailbox === "all" ? "" : "/" + segs(mailbox)) + (q ? "?q=" + encodeURIComponent(q) : "");
      history.replaceState(null, "", hash);
      load(false);
    }, 250);
    search.addEventListener("input", research);
    search.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") research();
    });
    older.addEventListener("click", () => load(true));

    /** A new message: shown at its place if it belongs to this list, without reloading the page. */
    async function onMessage(ev) {
      sidebar.refresh();
      if (!loaded) {
        early.push(ev);
        return;
      }
      if (mailbox !== "all" && ev.mailbox !== mailbox) return;
      if (query) {
        reload();
        return;
      }
      if (ev.summary) {
        place(ev.summary, true);
        showStats(0);
        return;
      }
      // An event without its summary: ask for the message (the index may take a moment to see it).
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          const m = await api(apiMessage(ev.mailbox, ev.key));
          place(m, true);
          showStats(0);
          return;
        } catch (e) {
          if (e.status !== 404) return;
          await delay(300 * (attempt + 1));
        }
      }
    }
    const reload = throttle(() => load(false), 500);

    const ticker = setInterval(() => {
      for (const el of list.querySelectorAll(".age[data-ts]")) el.textContent = ago(Number(el.dataset.ts));
    }, 15000);
    const slash = (ev) => {
      if (ev.key === "/" && document.activeElement !== search) {
        ev.preventDefault();
        search.focus();
      }
    };
    document.addEventListener("keydown", slash);

    load(false);
    return {
      onMessage,
      onReconnect: () => load(false),
      cleanup: () => {
        clearInterval(ticker);
        research.cancel();
        reload.cancel();
        sidebar.refresh.cancel();
        document.removeEventListener("keydown", slash);
        generation++;
      },
    };
  }

  /* ---------- one message and its thread ---------- */

  function messageView(mailbox, key) {
    const box = h("div", { class: "message", testid: "message" }, h("p", { class: "muted" }, "Loading…"));
    const threadList = h("div", { class: "list thread", testid: "thread" });
    const threadTitle = h("h2", {}, "Conversation");
    view.appendChild(h("div", { class: "page" }, box, h("section", { class: "thread-box" }, threadTitle, threadList)));
    let gone = false;
    let threadKey = "";
    const selfId = mailbox + "/" + key;

    function renderThread(thread) {
      const ids = thread.map((m) => m.id).join("\n");
      if (ids === threadKey) return;
      threadKey = ids;
      clear(threadList);
      threadTitle.textContent = "Conversation (" + thread.length + ")";
      for (const m of thread) {
        const row = messageRow(m, true);
        row.setAttribute("data-testid", "thread-row");
        row.classList.add(m.from_app ? "dir-in" : "dir-out");
        row.insertBefore(h("span", { class: "direction", title: m.from_app ? "the application wrote" : "written to the application" },
          m.from_app ? "app" : "you"), row.firstChild);
        if (m.id === selfId) {
          row.classList.add("current");
          row.setAttribute("aria-current", "page");
        }
        threadList.appendChild(row);
      }
    }

    function meta(label, value, testid) {
      if (!value) return null;
      return [h("dt", {}, label), h("dd", { testid }, value)];
    }

    function render(m) {
      clear(box);
      const base = apiMessage(m.mailbox, m.key);
      const actions = h("div", { class: "actions" });
      if (m.from_app && m.reply) {
        actions.appendChild(h("a", {
          class: "button primary", href: "#/compose?reply=" + segs(m.mailbox, m.key), testid: "reply",
        }, "Reply as " + m.reply.mail_from));
      }
      if (m.reason) {
        const requeue = h("button", { type: "button", class: "button primary", testid: "message-requeue" }, "Requeue");
        requeue.addEventListener("click", async () => {
          requeue.disabled = true;
          try {
            const res = await api("/api/pipeline/parked/" + segs(m.mailbox, m.key) + "/requeue", { method: "POST", body: {} });
            requeue.textContent = "Requeued to " + res.to;
          } catch (e) {
            requeue.disabled = false;
            showError(e.message);
          }
        });
        actions.appendChild(requeue);
      }
      actions.appendChild(h("a", { class: "button", href: base + "/raw?download=1", testid: "download-raw" }, "Download .eml"));
      actions.appendChild(h("a", { class: "button", href: "#/inbox/" + segs(m.mailbox), testid: "back" }, "Back to " + m.mailbox));

      const panels = {};
      const tabs = h("div", { class: "tabs", role: "tablist" });
      const panelBox = h("div", { class: "panel-box" });
      const order = [["text", "Text"], ["html", "HTML"], ["headers", "Headers"], ["source", "Source"],
        ["parts", "Parts (" + countParts(m.parts) + ")"]];
      const builders = {
        text: () => h("pre", { class: "text", testid: "text-body" }, m.text || "(no text)"),
        html: () => htmlPanel(m, base),
        headers: () => h("table", { class: "headers", testid: "headers-table" },
          h("tbody", {}, (m.headers || []).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))),
        source: () => sourcePanel(base),
        parts: () => partsPanel(m, base),
      };
      function show(name) {
        for (const tab of tabs.children) {
          tab.classList.toggle("active", tab.dataset.tab === name);
          tab.setAttribute("aria-selected", tab.dataset.tab === name ? "true" : "false");
        }
        if (!panels[name]) {
          panels[name] = h("div", { class: "panel", testid: "panel-" + name }, builders[name]());
          panelBox.appendChild(panels[name]);
        }
        for (const [n, p] of Object.entries(panels)) p.hidden = n !== name;
      }
      for (const [name, label] of order) {
        tabs.appendChild(h("button", {
          type: "button", class: "tab", role: "tab", "data-tab": name, testid: "tab-" + name,
          onclick: () => show(name),
        }, label));
      }

      append(box, [
        h("h1", { testid: "message-subject" }, m.subject || "(no subject)"),
        m.reason ? h("p", { class: "reason", testid: "message-reason" }, "Parked: " + m.reason) : null,
        h("dl", { class: "meta" },
          meta("From", m.from, "message-from"), meta("To", m.to, "message-to"), meta("Cc", m.cc, "message-cc"),
          meta("Reply-To", m.reply_to, "message-reply-to"), meta("Date", formatDate(m), "message-date"),
          meta("Mailbox", m.mailbox, "message-mailbox"), meta("Message-ID", m.message_id, "message-id"),
          meta("Size", size(m.size), "message-size")),
        actions, tabs, panelBox,
      ]);
      show(m.has_html && !(m.text || "").trim() ? "html" : "text");
    }

    async function refresh() {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          const m = await api(apiMessage(mailbox, key));
          if (gone) return null;
          return m;
        } catch (e) {
          if (gone) return null;
          // A message just sent from the compose page may take a moment to be seen by the index.
          if (e.status === 404 && attempt < 4) {
            await delay(300 * (attempt + 1));
            continue;
          }
          throw e;
        }
      }
      return null;
    }

    refresh().then((m) => {
      if (!m) return;
      render(m);
      renderThread(m.thread || [m]);
      document.title = (m.subject || "(no subject)") + " · Lamson";
    }).catch((e) => {
      clear(box);
      box.appendChild(h("p", { class: "empty", testid: "message-error" }, e.message));
    });

    // A new message anywhere may belong to this thread: ask again (now, and once more a little later
    // in case the index had not seen it yet) and redraw the thread if it changed.
    const again = throttle(async () => {
      try {
        const m = await refresh();
        if (m) renderThread(m.thread || [m]);
      } catch (e) {
        /* the message view stays as it was */
      }
    }, 400);
    let later = null;
    return {
      onMessage: () => {
        again();
        if (later === null) {
          later = setTimeout(() => {
            later = null;
            again();
          }, 2000);
        }
      },
      onReconnect: () => again(),
      cleanup: () => {
        gone = true;
        again.cancel();
        clearTimeout(later);
      },
    };
  }

  function countParts(parts) {
    let n = 0;
    for (const p of parts || []) n += 1 + countParts(p.children);
    return n;
  }

  /** The HTML part in an iframe sandboxed without allow-scripts and allow-same-origin: the mail's own
   * scripts cannot run and it cannot reach this page; remote images only load after the button. */
  function htmlPanel(m, base) {
    if (!m.html && !m.has_html) return h("p", { class: "muted", testid: "no-html" }, "This message has no HTML part.");
    const frame = h("iframe", {
      class: "html-frame", sandbox: "", referrerpolicy: "no-referrer", title: "The message's HTML part",
      src: base + "/html?images=0", testid: "html-frame",
    });
    const button = h("button", { type: "button", class: "button", testid: "load-images" }, "Load remote images");
    const note = h("span", { class: "muted", testid: "blocked-images" },
      "Shown sanitised, without scripts; remote images are blocked until you ask.");
    // How many remote images the sanitiser held back (a header of the HTML answer), to say so.
    fetch(base + "/html?images=0", { credentials: "same-origin", cache: "no-store" }).then((res) => {
      const n = Number(res.headers.get("X-Lamson-Blocked-Images"));
      if (!res.ok || !isFinite(n) || button.disabled) return;
      note.textContent = n === 0 ? "Shown sanitised, without scripts. It asks for no remote image."
        : "Shown sanitised, without scripts; " + n + (n === 1 ? " remote image is" : " remote images are") + " blocked until you ask.";
    }).catch(() => {});
    button.addEventListener("click", () => {
      frame.setAttribute("src", base + "/html?images=1");
      button.disabled = true;
      button.textContent = "Remote images loaded";
      note.textContent = "Shown sanitised, without scripts; remote images loaded (their servers now know you read it).";
    });
    return [h("div", { class: "html-bar" }, note, button), frame];
  }

  function sourcePanel(base) {
    const pre = h("pre", { class: "source", testid: "source" }, "Loading…");
    fetch(base + "/raw", { credentials: "same-origin", cache: "no-store" })
      .then((res) => (res.ok ? res.text() : Promise.reject(new Error(res.status + " " + res.statusText))))
      .then((text) => (pre.textContent = text))
      .catch((e) => (pre.textContent = "Could not load the source: " + e.message));
    return pre;
  }

  /** The MIME tree under the message itself (its own Content-Type first), each leaf a download. */
  function partsPanel(m, base) {
    const parts = m.parts || [];
    const header = (m.headers || []).find(([k]) => k.toLowerCase() === "content-type");
    const own = header ? header[1].split(";")[0].trim().toLowerCase() : "text/plain";
    function tree(list) {
      return h("ul", { class: "parts" }, list.map((p) => {
        const leaf = !p.children || p.children.length === 0;
        const label = p.filename || p.content_type;
        return h("li", {},
          h("span", { class: "part" },
            h("code", {}, p.path), " ",
            leaf ? h("a", {
              href: base + "/parts/" + p.path.split(".").map(encodeURIComponent).join("."),
              download: p.filename || "", testid: "part-link", "data-path": p.path,
            }, label) : h("strong", {}, label),
            " ", h("span", { class: "muted" }, [p.filename ? p.content_type : null, size(p.size), p.disposition].filter(Boolean).join(" · "))),
          leaf ? null : tree(p.children));
      }));
    }
    return h("ul", { class: "parts" }, h("li", {},
      h("span", { class: "part" }, h("strong", {}, "message"), " ", h("span", { class: "muted" }, own + " · " + size(m.size))),
      parts.length ? tree(parts) : null));
  }

  /* ---------- compose ---------- */

  function composeView(params) {
    const replyTo = params.get("reply");
    const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
    const from = h("input", { type: "email", name: "mail_from", required: true, testid: "compose-from",
      placeholder: "you@example.com", autocomplete: "email", value: localStorage.getItem("lamson.from") || "" });
    const to = h("input", { type: "text", name: "to", required: true, testid: "compose-to", placeholder: "hello@test.com (several: comma separated)" });
    const subject = h("input", { type: "text", name: "subject", testid: "compose-subject", placeholder: "Subject" });
    const body = h("textarea", { name: "body", rows: 12, testid: "compose-body", placeholder: "Write to the application…" });
    const send = h("button", { type: "submit", class: "button primary", testid: "compose-send" }, "Send");
    const status = h("p", { class: "status", testid: "compose-status", "aria-live": "polite" });
    const context = h("div", { class: "compose-context" });
    const form = h("form", { class: "compose", testid: "compose-form" },
      h("h1", {}, replyTo ? "Reply" : "New message"),
      h("p", { class: "muted" },
        "You write as the other side of the conversation: this goes over SMTP to the application's own receiver, " +
        "with the sender you give as the envelope sender."),
      context,
      field("From", from), field("To", to), field("Subject", subject), field("Body", body),
      h("div", { class: "actions" }, send), status);
    view.appendChild(h("div", { class: "page narrow" }, form));
    let inReplyTo = null;
    let gone = false;

    if (replyTo) {
      send.disabled = true; // until the form holds the answer's fields (and knows what it answers)
      const cut = replyTo.lastIndexOf("/");
      api(apiMessage(replyTo.slice(0, cut), replyTo.slice(cut + 1))).then((m) => {
        if (gone) return;
        inReplyTo = m.id;
        const r = m.reply || {};
        from.value = r.mail_from || from.value;
        to.value = r.to || "";
        subject.value = r.subject || "";
        append(context, [
          h("p", {}, "In reply to ", h("a", { href: messageHref(m), testid: "compose-in-reply-to" }, m.subject || "(no subject)"),
            " from " + (m.from || "?")),
          h("details", { testid: "compose-original" }, h("summary", {}, "The message you answer"), h("pre", { class: "text" }, m.text || "")),
        ]);
        send.disabled = false;
        body.focus();
      }).catch((e) => {
        status.textContent = "Could not load the message to answer: " + e.message;
        status.className = "status error";
        send.disabled = false;
      });
    } else {
      (from.value ? to : from).focus();
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      send.disabled = true;
      status.className = "status";
      status.textContent = "Sending…";
      // Several recipients, comma separated (a comma inside a quoted name does not count).
      const rcpts = to.value.split(/,(?=(?:[^"]*"[^"]*")*[^"]*$)/).map((x) => x.trim()).filter(Boolean);
      const payload = { mail_from: from.value.trim(), to: rcpts.length === 1 ? rcpts[0] : rcpts, subject: subject.value, body: body.value };
      if (inReplyTo) payload.in_reply_to = inReplyTo;
      try {
        const res = await api("/api/send", { method: "POST", body: payload });
        localStorage.setItem("lamson.from", payload.mail_from);
        status.textContent = "Sent: " + (res.reply || "accepted");
        if (!gone) location.hash = "#/m/" + segs(...splitId(res.id));
      } catch (e) {
        status.className = "status error";
        status.textContent = e.message;
        send.disabled = false;
      }
    });
    return { cleanup: () => (gone = true) };
  }

  function splitId(id) {
    const cut = id.lastIndexOf("/");
    return [id.slice(0, cut), id.slice(cut + 1)];
  }

  /* ---------- pipeline ---------- */

  function pipelineView() {
    const section = (title, testid) => {
      const body = h("div", { class: "section-body", testid });
      const el = h("section", { class: "card card-" + testid }, h("h2", {}, title), body);
      return { el, body, last: null };
    };
    const notice = h("p", { class: "notice", testid: "pipeline-notice", "aria-live": "polite", hidden: true });
    const sections = {
      rates: section("Messages per second", "rates"),
      programs: section("Programs", "programs"),
      stages: section("Spool and outbox", "stages"),
      queues: section("Wake-up queues and workers", "queues"),
      states: section("Conversation states", "states"),
      parked: section("Parked mail", "parked"),
    };
    view.appendChild(h("div", { class: "page wide" },
      h("div", { class: "toolbar" }, h("h1", {}, "Pipeline"), h("span", { class: "stats", testid: "pipeline-updated" })),
      notice,
      h("div", { class: "grid" }, Object.values(sections).map((x) => x.el))));
    let gone = false;
    let timer = null;

    function say(text, bad) {
      notice.textContent = text;
      notice.className = "notice" + (bad ? " error" : "");
      notice.hidden = false;
    }

    /** Redraws one section when its data changed, keeping every element whose tag and attributes are
     * unchanged (only its text is updated): a button is not replaced under the pointer every time an
     * age or an uptime ticks. Rows and buttons carry their identity in attributes (data-id, data-name,
     * data-testid), so an element kept is one for the same thing. */
    function put(name, data, draw) {
      const key = JSON.stringify(data);
      const sec = sections[name];
      if (key === sec.last) return;
      sec.last = key;
      const fresh = h("div", {}, draw(data));
      morphChildren(sec.body, fresh);
    }

    const failed = (e) => h("p", { class: "empty error" }, e.message);

    function table(testid, head, rows, empty) {
      if (!rows.length) return h("p", { class: "muted", testid: testid + "-empty" }, empty);
      return h("table", { class: "grid-table", testid },
        h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
        h("tbody", {}, rows));
    }

    async function action(button, url, done) {
      button.disabled = true;
      try {
        const res = await api(url, { method: "POST", body: {} });
        say(done(res), false);
      } catch (e) {
        say(e.message, true);
        button.disabled = false;
      }
      tick();
    }

    function drawPipeline(p) {
      const programs = p.programs === null || p.programs === undefined
        ? h("p", { class: "muted", testid: "programs-error" }, p.programs_error || "supervisord is not reachable.")
        : table("programs-table", ["Program", "State", "Uptime", "PID", ""], p.programs.map((g) =>
          h("tr", { testid: "program-row", "data-name": g.name },
            h("td", { title: g.description || "" }, g.name),
            h("td", {}, h("span", { class: "state state-" + String(g.state).toLowerCase(), testid: "program-state" }, g.state)),
            h("td", { testid: "program-uptime" }, g.uptime === null ? "–" : duration(g.uptime)),
            h("td", { testid: "program-pid" }, g.pid === null ? "–" : String(g.pid)),
            h("td", {}, h("button", {
              type: "button", class: "button small", testid: "restart-" + g.name,
              onclick: (ev) => action(ev.currentTarget, "/api/pipeline/programs/" + encodeURIComponent(g.name) + "/restart",
                () => g.name + " restarted."),
            }, "Restart")))), "No programs.");
      put("programs", [p.programs, p.programs_error], () => programs);

      put("stages", [p.stages, p.redis], () => [
        p.redis && !p.redis.ok ? h("p", { class: "error", testid: "redis-error" }, "Redis: " + (p.redis.error || "unreachable")) : null,
        table("stages-table", ["Stage", "Waiting", "In flight", "Parked", "Oldest waiting"], (p.stages || []).map((st) =>
          h("tr", { testid: "stage-row", "data-name": st.name },
            h("td", {}, st.name), h("td", { class: "num" }, String(st.waiting)), h("td", { class: "num" }, String(st.in_flight)),
            h("td", { class: "num" }, String(st.parked)), h("td", { class: "num" }, duration(st.oldest_waiting_age)))), "No stages."),
      ]);

      put("queues", [p.queues, p.workers], () => [
        table("queues-table", ["Queue", "Jobs", "Workers"], (p.queues || []).map((q) =>
          h("tr", { testid: "queue-row", "data-name": q.name },
            h("td", {}, q.name), h("td", { class: "num" }, String(q.jobs)), h("td", { class: "num" }, String(q.workers)))), "No queues."),
        table("workers-table", ["Worker", "State", "Queues", "Current job", "Done", "Failed"], (p.workers || []).map((w) =>
          h("tr", { testid: "worker-row", "data-name": w.name },
            h("td", { title: w.birth ? "since " + w.birth : "" }, w.name), h("td", {}, w.state),
            h("td", {}, (w.queues || []).join(", ")), h("td", {}, w.current_job || "–"),
            h("td", { class: "num" }, String(w.successful)), h("td", { class: "num" }, String(w.failed)))), "No workers."),
      ]);
    }

    function drawParked(data) {
      const more = data.truncated
        ? h("p", { class: "muted", testid: "parked-truncated" }, "Showing " + data.parked.length + " of " + data.total + ".") : null;
      return [more, table("parked-table", ["Subject", "From", "To", "Reason", "Origin", "Age", ""], data.parked.map((m) =>
        h("tr", { testid: "parked-row", "data-id": m.id },
          h("td", {}, h("a", { href: messageHref(m), testid: "parked-open" }, m.subject || "(no subject)")),
          h("td", {}, m.from || ""), h("td", {}, m.to || ""),
          h("td", { class: "why" }, m.reason || ""), h("td", {}, m.group || "–"), h("td", {}, duration(m.age)),
          h("td", {}, h("button", {
            type: "button", class: "button small", testid: "requeue",
            onclick: (ev) => action(ev.currentTarget, "/api/pipeline/parked/" + segs(m.mailbox, m.key) + "/requeue",
              (res) => "Requeued “" + (m.subject || m.key) + "” to " + res.to + "."),
          }, "Requeue")))), "Nothing is parked.")];
    }

    function drawStates(data) {
      const modules = Object.entries(data.by_module || {});
      return [
        modules.length ? h("ul", { class: "by-module", testid: "states-summary" }, modules.map(([mod, counts]) =>
          h("li", {}, h("code", {}, mod), " ", Object.entries(counts).map(([st, n]) => h("span", { class: "tag" }, st + " " + n))))) : null,
        table("states-table", ["Handler module", "Sender", "State"], (data.states || []).slice(0, 200).map((st) =>
          h("tr", { testid: "state-row" }, h("td", {}, h("code", {}, st.module)), h("td", {}, st.sender), h("td", {}, st.state))),
        "No conversation has a state yet."),
        data.truncated || (data.states || []).length > 200
          ? h("p", { class: "muted", testid: "states-truncated" }, "Showing " + Math.min(200, (data.states || []).length) +
            " of " + (data.total || (data.states || []).length) + " senders.") : null,
      ];
    }

    async function tick() {
      clearTimeout(timer);
      const [p, states, parked, rates] = await Promise.allSettled([
        api("/api/pipeline"), api("/api/pipeline/states"), api("/api/pipeline/parked"), api("/api/pipeline/rates?minutes=10"),
      ]);
      if (gone) return;
      if (p.status === "fulfilled") drawPipeline(p.value);
      else for (const n of ["programs", "stages", "queues"]) put(n, "error:" + p.reason.message, () => failed(p.reason));
      if (parked.status === "fulfilled") put("parked", parked.value, drawParked);
      else put("parked", "error:" + parked.reason.message, () => failed(parked.reason));
      if (states.status === "fulfilled") put("states", states.value, drawStates);
      else put("states", "error:" + states.reason.message, () => failed(states.reason));
      if (rates.status === "fulfilled") put("rates", rates.value, drawRates);
      else put("rates", "error:" + rates.reason.message, () => failed(rates.reason));
      document.querySelector("[data-testid=pipeline-updated]").textContent = "updated " + new Date().toLocaleTimeString();
      // An action's refresh and the periodic one may overlap: whichever ends last sets the one timer.
      clearTimeout(timer);
      timer = setTimeout(tick, 2500);
    }
    tick();
    return {
      onMessage: () => {},
      cleanup: () => {
        gone = true;
        clearTimeout(timer);
      },
    };
  }

  /** The rates as an SVG line chart: one line per stage counter, time along x, messages per second up y. */
  function drawRates(data) {
    const names = ["accepted", "routed", "delivered"];
    const series = data.series || {};
    const W = 720, H = 270, L = 44, R = 12, T = 12, B = 26;
    let t0 = Infinity, t1 = -Infinity, ymax = 0;
    for (const n of names) {
      for (const [t, v] of series[n] || []) {
        t0 = Math.min(t0, t);
        t1 = Math.max(t1, t);
        ymax = Math.max(ymax, v);
      }
    }
    const now = Date.now() / 1000;
    if (!isFinite(t0)) {
      t1 = now;
      t0 = now - 600;
    }
    if (t1 - t0 < 60) t0 = t1 - 60;
    const step = niceStep(ymax / 4);
    const top = Math.max(step, Math.ceil(ymax / step - 1e-9) * step);
    const ticks = Math.round(top / step);
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", testid: "rates-chart",
      "aria-label": "Messages per second accepted, routed and delivered" });
    for (let i = 0; i <= ticks; i++) {
      const v = step * i;
      svg.appendChild(s("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "gridline" }));
      svg.appendChild(s("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, formatRate(v)));
    }
    const span = t1 - t0;
    for (let i = 0; i <= 4; i++) {
      const t = t0 + (span * i) / 4;
      svg.appendChild(s("text", { x: x(t), y: H - 8, class: "axis", "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
        i === 4 ? "now" : "−" + duration(t1 - t)));
    }
    const legend = h("ul", { class: "legend", testid: "rates-legend" });
    for (const n of names) {
      const points = series[n] || [];
      if (points.length) {
        // A sample Redis did not answer leaves no point: the line breaks there instead of bridging it.
        const gap = 2.5 * (data.interval || 2);
        const d = points.map(([t, v], i) => (i && t - points[i - 1][0] <= gap ? "L" : "M") +
          x(t).toFixed(1) + " " + y(v).toFixed(1)).join(" ");
        svg.appendChild(s("path", { d, class: "line line-" + n, testid: "rate-" + n }));
      }
      const last = points.length ? points[points.length - 1][1] : 0;
      legend.appendChild(h("li", { class: "key-" + n }, h("span", { class: "swatch" }), n + " " + formatRate(last) + "/s"));
    }
    const note = data.sampler_error || (data.sampling === false ? "The rate sampler is not running." : null);
    return [note ? h("p", { class: "muted", testid: "rates-error" }, "Rates: " + note) : null, svg, legend];
  }

  /** The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``v``: a gridline step people read. */
  function niceStep(v) {
    if (!(v > 0)) return 0.25;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v - 1e-12) return m * p;
    return 10 * p;
  }

  function formatRate(v) {
    if (Number.isInteger(v) || v >= 10) return String(Math.round(v));
    return v.toFixed(v >= 1 ? 1 : 2);
  }

  /* ---------- start ---------- */

  window.addEventListener("hashchange", route);
  loadSession().then(() => {
    connectEvents();
    if (!location.hash) history.replaceState(null, "", "#/inbox");
    route();
  });
})();
