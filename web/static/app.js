// The page's side of the SSE contract, in plain JavaScript, and a view of
// what happens on the wire while it runs.
"use strict";

(() => {
  // Text that changes as the page runs, in both languages. {name} is filled
  // in from the arguments given with the key. The rest of the page's text is
  // in index.html, in both languages.
  const text = {
    en: {
      switchTo: "中文",
      switchTitle: "Switch the page to Chinese",
      start: "Start",
      again: "Run again",
      opened: "open · the stream is connected",
      reopened: "open · reconnected after {ms} ms, sending Last-Event-ID: {id}",
      reopenedFresh: "open · reconnected after {ms} ms, with no Last-Event-ID: no event had arrived yet",
      lost: "error · the stream ended without close; the browser waits the retry delay, then reconnects",
      failed: "error · the browser gave up: readyState is CLOSED",
      closed: "the page calls es.close(): the run is over, no reconnect",
      gap: "gap · the server lost its registry (Redis): updates after id {id} may be missing, and the run stopped; the browser reconnects, then start again",
      started: "POST /event/progress · the page asks for a run",
      dropped: "POST /event/drop · the page asks the server to drop the stream",
      tally: "{updates} updates · {missing} missing · {repeated} repeated",
      failure: "Error: {message}",
    },
    "zh-CN": {
      switchTo: "English",
      switchTitle: "切换到英文",
      start: "开始",
      again: "再来一次",
      opened: "open · 流已连接",
      reopened: "open · {ms} 毫秒后重连，带上 Last-Event-ID: {id}",
      reopenedFresh: "open · {ms} 毫秒后重连；还没收到过事件，所以没有 Last-Event-ID",
      lost: "error · 流没有 close 就断了；浏览器等待 retry 时长后重连",
      failed: "error · 浏览器放弃了：readyState 为 CLOSED",
      closed: "页面调用 es.close()：任务结束，不再重连",
      gap: "gap · 服务器失去了它的注册表（Redis）：id {id} 之后的 update 可能丢失，任务已停止；浏览器会重连，之后请重新开始",
      started: "POST /event/progress · 页面请求开始任务",
      dropped: "POST /event/drop · 页面请服务器断开这条流",
      tally: "{updates} 个 update · 缺失 {missing} · 重复 {repeated}",
      failure: "出错：{message}",
    },
  };

  const storage = (() => {
    try {
      return window.localStorage;
    } catch {
      return null; // storage is off: the choice lasts as long as the page
    }
  })();
  let lang = storage?.getItem("lang") in text ? storage.getItem("lang") : "en";

  const t = (key, args = {}) =>
    text[lang][key].replace(/\{(\w+)\}/g, (_, name) => String(args[name]));

  // say writes the text of key into el and remembers key and args on it, so
  // that a switch of language can write it again.
  const say = (el, key, args = {}) => {
    el.dataset.key = key;
    el.dataset.args = JSON.stringify(args);
    el.textContent = t(key, args);
  };

  const $ = (selector) => document.querySelector(selector);
  const button = $("#sse");
  const dropButton = $("#drop");
  const langButton = $("#lang");
  const count = $(".progress");
  const bar = $("#bar");
  const state = $("#state");
  const lastId = $("#last-id");
  const reconnects = $("#reconnects");
  const tally = $("#tally");
  const message = $("#message");
  const frames = $("#frames");

  const showLanguage = () => {
    document.documentElement.lang = lang;
    langButton.lang = lang === "en" ? "zh-CN" : "en";
    langButton.textContent = t("switchTo");
    langButton.title = t("switchTitle");
    for (const el of document.querySelectorAll("[data-key]")) {
      el.textContent = t(el.dataset.key, JSON.parse(el.dataset.args));
    }
  };

  langButton.addEventListener("click", () => {
    lang = lang === "en" ? "zh-CN" : "en";
    storage?.setItem("lang", lang);
    showLanguage();
  });

  // A fresh client id per page, as the Koa demo does.
  const id = String(Date.now());
  const pushURL = `/event/push?id=${encodeURIComponent(id)}`;
  $("#client-id").textContent = id;
  for (const el of document.querySelectorAll(".curl")) {
    el.textContent = `curl -N '${location.origin}/event/push?id=1'`;
  }

  // The frame panel: newest first, at most maxFrames entries.
  const maxFrames = 60;

  const clock = () => {
    const now = new Date();
    return `${now.toTimeString().slice(0, 8)}.${String(now.getMilliseconds()).padStart(3, "0")}`;
  };

  const addEntry = (className, body) => {
    const li = document.createElement("li");
    li.className = className;
    const time = document.createElement("time");
    time.textContent = clock();
    li.append(time, body);
    frames.prepend(li);
    while (frames.childElementCount > maxFrames) frames.lastElementChild.remove();
  };

  // showFrame writes an event the way it came over the wire. Every event of
  // this server has an id, so lastEventId is the event's own id field.
  // A narrow screen wraps a long data line after a comma, never inside a
  // token: each comma is followed by a <wbr>.
  const showFrame = (e) => {
    const pre = document.createElement("pre");
    const line = (field, value) => {
      const name = document.createElement("span");
      name.className = "field";
      name.textContent = field;
      pre.append(name, ": ");
      value.split(",").forEach((part, i) => {
        if (i > 0) pre.append(",", document.createElement("wbr"));
        pre.append(part);
      });
      pre.append("\n");
    };
    line("event", e.type);
    line("id", e.lastEventId);
    for (const data of e.data.split("\n")) line("data", data);
    addEntry(`frame frame-${e.type}`, pre);
  };

  // showMark notes something the browser or the page did, between frames.
  const showMark = (kind, key, args) => {
    const span = document.createElement("span");
    say(span, key, args);
    addEntry(`mark mark-${kind}`, span);
  };

  let es = null; // the EventSource
  let running = false; // a run was asked for and has not closed yet
  let ranOnce = false; // a run has closed: the button offers another
  // The run's bookkeeping: every count should arrive once, and this server
  // numbers a client's events one by one, so a gap in the ids is a lost
  // event.
  let run = null;
  let previousId = null; // the id of the last event, as a number
  let lostAt = null; // when the stream was lost, until the browser is back
  let reconnectCount = 0;

  const showState = () => {
    const name = ["CONNECTING", "OPEN", "CLOSED"][es.readyState];
    state.textContent = name;
    state.dataset.state = name;
    // Off while a run goes and while the browser connects. On a closed
    // stream it stays on: a click opens a new stream first.
    button.disabled = running || es.readyState === EventSource.CONNECTING;
    say(button, ranOnce ? "again" : "start");
    dropButton.disabled = es.readyState !== EventSource.OPEN;
  };

  const showCount = (n) => {
    count.textContent = String(n);
    bar.value = n;
    bar.textContent = `${n}%`;
  };

  const showTally = () => {
    if (run) say(tally, "tally", { updates: run.updates, missing: run.missing, repeated: run.repeated });
  };

  const noteEvent = (e) => {
    showFrame(e);
    lastId.textContent = e.lastEventId;
    const eventId = Number(e.lastEventId);
    if (run && previousId !== null && eventId > previousId + 1) {
      run.missing += eventId - previousId - 1;
    }
    previousId = eventId;
  };

  // connect opens the stream. After a dropped connection the browser
  // reconnects by itself, sending Last-Event-ID; after "close" the page
  // closes the EventSource, or the browser would reconnect.
  const connect = () => {
    es = new EventSource(pushURL);
    showState();
    es.addEventListener("open", () => {
      if (lostAt === null) {
        showMark("open", "opened");
      } else {
        reconnectCount++;
        reconnects.textContent = String(reconnectCount);
        // No event arrives while the stream is down: the last id seen is
        // the one the browser sent as Last-Event-ID. Before any event, it
        // sent none.
        const ms = Math.round(performance.now() - lostAt);
        if (previousId === null) showMark("open", "reopenedFresh", { ms });
        else showMark("open", "reopened", { ms, id: String(previousId) });
        lostAt = null;
      }
      showState();
    });
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) {
        running = false;
        showMark("error", "failed");
      } else if (lostAt === null) {
        lostAt = performance.now();
        showMark("error", "lost");
      }
      showState();
    });
    es.addEventListener("update", (e) => {
      noteEvent(e);
      const data = JSON.parse(e.data);
      if (run) {
        if (run.seen.has(data.count)) run.repeated++;
        run.seen.add(data.count);
        run.updates++;
        showTally();
      }
      showCount(data.count);
    });
    // A server whose registry is shared through Redis ends the stream with
    // "gap" when it loses Redis: it can no longer tell what was missed.
    // The event has no id, so the browser reconnects with the last one.
    es.addEventListener("gap", (e) => {
      showFrame(e);
      showMark("gap", "gap", { id: e.lastEventId || "–" });
      // The run is over, but the button stays off until the browser has
      // reconnected: the stream's error event comes next, and the open
      // (or a CLOSED state) after it turns the button back on.
      running = false;
    });
    es.addEventListener("close", (e) => {
      noteEvent(e);
      showTally();
      es.close();
      showMark("closed", "closed");
      running = false;
      ranOnce = true;
      showState();
    });
  };

  // opened resolves when the stream opens, and fails if the browser gives up.
  const opened = () =>
    new Promise((resolve, reject) => {
      const onOpen = () => {
        es.removeEventListener("error", onError);
        resolve();
      };
      const onError = () => {
        if (es.readyState === EventSource.CLOSED) {
          es.removeEventListener("open", onOpen);
          reject(new Error("the stream did not open"));
        }
      };
      es.addEventListener("open", onOpen, { once: true });
      es.addEventListener("error", onError);
    });

  // post sends a request and fails with the server's JSON error, if any.
  const post = async (url, body) => {
    const res = await fetch(url, {
      method: "POST",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : null,
    });
    if (!res.ok) {
      const reply = await res.json().catch(() => ({}));
      throw new Error(`${res.status} ${reply.error || res.statusText}`);
    }
  };

  const fail = (err) => {
    say(message, "failure", { message: err.message });
  };

  const start = async () => {
    running = true;
    message.textContent = "";
    delete message.dataset.key;
    showState();
    try {
      if (es.readyState === EventSource.CLOSED) {
        // The last run closed the stream: open a new one first.
        connect();
        await opened();
      }
      showCount(0);
      run = { updates: 0, missing: 0, repeated: 0, seen: new Set() };
      showTally();
      // The mark goes first: the first update may arrive before the
      // answer does. The Koa page sends the id as a number; the server
      // takes either.
      showMark("post", "started");
      await post("/event/progress", { id: Number(id) });
    } catch (err) {
      running = false;
      fail(err);
      showState();
    }
  };

  const drop = async () => {
    dropButton.disabled = true;
    try {
      showMark("drop", "dropped");
      await post(`/event/drop?id=${encodeURIComponent(id)}`);
    } catch (err) {
      fail(err);
      showState();
    }
  };

  button.addEventListener("click", start);
  dropButton.addEventListener("click", drop);

  // Tell the server the client is gone. keepalive lets the request outlive
  // the page.
  window.addEventListener("pagehide", () => {
    es?.close();
    fetch(`/event/remove?id=${encodeURIComponent(id)}`, { keepalive: true }).catch(() => {});
  });

  showLanguage();
  connect();
})();
