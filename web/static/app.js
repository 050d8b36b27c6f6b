// The page's side of the SSE contract, in plain JavaScript, and a view of
// what happens on the wire while it runs. It reads a run in one of two ways:
// the browser's EventSource on GET /event/push, as the Koa demo does, or
// fetch with a POST to /event/progress that starts the run and reads its
// stream back, as fetch-event-source and LLM clients do.
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
      lostFetch: "error · the stream ended without close; the page waits the retry delay ({ms} ms), then POSTs again with Last-Event-ID",
      failed: "error · the browser gave up: readyState is CLOSED",
      closed: "the page calls es.close(): the run is over, no reconnect",
      closedFetch: "close · the server ended the response: the run is over",
      finished: "204 · the run is over and the page had all of it: no reconnect",
      gap: "gap · the server lost its registry (Redis): updates after id {id} may be missing, and the run stopped; the browser reconnects, then start again",
      gapFetch: "gap · the server lost its registry (Redis): updates after id {id} may be missing, and the run stopped; start again",
      gapOpen: "gap · the server cannot resume after id {id} ({reason}): updates after it may be missing; the stream goes on",
      started: "POST /event/progress · the page asks for a run",
      startedFetch: "POST /event/progress · Accept: text/event-stream · the page asks for a run and reads it back",
      dropped: "POST /event/drop · the page asks the server to drop the stream",
      retry: "retry: {ms} · the server's reconnection delay: EventSource keeps it to itself, fetch sees it",
      comment: ": {text} · a comment (heartbeat): EventSource ignores it, fetch sees it",
      modeGet: "EventSource · GET /event/push",
      modePost: "fetch · the stream is the answer to the POST",
      tally: "{updates} updates · {missing} missing · {repeated} repeated",
      failure: "Error: {message}",
      signedIn: "Signed in as {subject} until {until}.",
      tokenNeeded: "A token is needed: {reason}",
      tokenRefused: "401 · the server refused the token ({reason}): the stream stays closed until you sign in again",
      resumed: "signed in again: the page reopens the stream after id {id}",
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
      lostFetch: "error · 流没有 close 就断了；页面等待 retry 时长（{ms} 毫秒）后带上 Last-Event-ID 再次 POST",
      failed: "error · 浏览器放弃了：readyState 为 CLOSED",
      closed: "页面调用 es.close()：任务结束，不再重连",
      closedFetch: "close · 服务器结束了响应：任务结束",
      finished: "204 · 任务已结束，页面已全部收到：不再重连",
      gap: "gap · 服务器失去了它的注册表（Redis）：id {id} 之后的 update 可能丢失，任务已停止；浏览器会重连，之后请重新开始",
      gapFetch: "gap · 服务器失去了它的注册表（Redis）：id {id} 之后的 update 可能丢失，任务已停止；请重新开始",
      gapOpen: "gap · 服务器无法从 id {id} 之后续传（{reason}）：之后的 update 可能丢失；流继续",
      started: "POST /event/progress · 页面请求开始任务",
      startedFetch: "POST /event/progress · Accept: text/event-stream · 页面请求开始任务并直接读取它的流",
      dropped: "POST /event/drop · 页面请服务器断开这条流",
      retry: "retry: {ms} · 服务器给的重连时长：EventSource 不交给页面，fetch 能看到",
      comment: ": {text} · 注释（心跳）：EventSource 忽略它，fetch 能看到",
      modeGet: "EventSource · GET /event/push",
      modePost: "fetch · 流就是 POST 的响应",
      tally: "{updates} 个 update · 缺失 {missing} · 重复 {repeated}",
      failure: "出错：{message}",
      signedIn: "已登录为 {subject}，有效期到 {until}。",
      tokenNeeded: "需要 token：{reason}",
      tokenRefused: "401 · 服务器拒绝了 token（{reason}）：重新登录之前，流保持关闭",
      resumed: "已重新登录：页面从 id {id} 之后重新打开流",
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
  const modeInputs = document.querySelectorAll('input[name="mode"]');
  const count = $(".progress");
  const bar = $("#bar");
  const state = $("#state");
  const lastId = $("#last-id");
  const reconnects = $("#reconnects");
  const tally = $("#tally");
  const message = $("#message");
  const frames = $("#frames");
  const authBox = $("#auth");
  const tokenInput = $("#token");
  const signInButton = $("#sign-in");
  const signOutButton = $("#sign-out");
  const who = $("#who");

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

  // A fresh client id per page, as the Koa demo has, but one nobody can
  // guess (without a token, the id is all that keeps a stranger from this
  // client's stream): a random integer below 2^53, so that it stays exact
  // as the Number the POST body carries.
  const id = (() => {
    const [hi, lo] = crypto.getRandomValues(new Uint32Array(2));
    return String((hi & 0x1fffff) * 2 ** 32 + lo);
  })();
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

  // showRaw notes a line that only a fetch reader sees: retry: or a
  // comment.
  const showRaw = (kind, key, args) => {
    const span = document.createElement("span");
    say(span, key, args);
    addEntry(`raw raw-${kind}`, span);
  };

  // The mode: "get" reads the run with EventSource, "post" with fetch.
  let mode = "get";
  let es = null; // the EventSource, in GET mode
  let fetchState = EventSource.CLOSED; // the POST stream's readyState, in POST mode
  let abortFetch = null; // ends the POST stream the page is reading
  let running = false; // a run was asked for and has not closed yet
  let ranOnce = false; // a run has closed: the button offers another
  // The run's bookkeeping: every count should arrive once, and this server
  // numbers a client's events one by one, so a gap in the ids is a lost
  // event.
  let run = null;
  let previousId = null; // the id of the last event, as a number
  let lostAt = null; // when the stream was lost, until it is back
  let reconnectCount = 0;
  let sinceOpen = 0; // events of the stream since it opened
  // With a server that wants a token: authOn; the token pasted, which the
  // fetch mode sends as Bearer (EventSource sends the session cookie); and
  // whether the page waits for a sign-in before it reads the run again.
  let authOn = false;
  let token = null;
  let waitingForToken = false;

  const readyState = () => (mode === "get" ? es?.readyState ?? EventSource.CLOSED : fetchState);

  const showState = () => {
    const name = ["CONNECTING", "OPEN", "CLOSED"][readyState()];
    state.textContent = name;
    state.dataset.state = name;
    // Off while a run goes and while the stream connects. On a closed
    // stream it stays on: a click opens a new stream first.
    button.disabled = running || readyState() === EventSource.CONNECTING;
    say(button, ranOnce ? "again" : "start");
    dropButton.disabled = readyState() !== EventSource.OPEN;
    for (const input of modeInputs) input.disabled = running;
    if (authOn && waitingForToken) button.disabled = true;
    authBox.hidden = !authOn;
    signOutButton.hidden = waitingForToken;
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

  // noteOpen marks a stream that opened: the first, or a reconnect. No
  // event arrives while the stream is down: the last id seen is the one
  // the client sent as Last-Event-ID. Before any event, it sent none.
  const noteOpen = () => {
    sinceOpen = 0;
    if (lostAt === null) {
      showMark("open", "opened");
      return;
    }
    reconnectCount++;
    reconnects.textContent = String(reconnectCount);
    const ms = Math.round(performance.now() - lostAt);
    if (previousId === null) showMark("open", "reopenedFresh", { ms });
    else showMark("open", "reopened", { ms, id: String(previousId) });
    lostAt = null;
  };

  // The events of a run, in either mode. e has type, data and lastEventId,
  // as a MessageEvent of EventSource has.
  const onUpdate = (e) => {
    sinceOpen++;
    noteEvent(e);
    const data = JSON.parse(e.data);
    if (run) {
      if (run.seen.has(data.count)) run.repeated++;
      run.seen.add(data.count);
      run.updates++;
      showTally();
    }
    showCount(data.count);
  };
  const onClose = (e) => {
    sinceOpen++;
    noteEvent(e);
    showTally();
    if (mode === "get") {
      es.close(); // or the browser would reconnect
      showMark("closed", "closed");
    } else {
      showMark("closed", "closedFetch");
    }
    running = false;
    ranOnce = true;
  };
  // A gap says that updates after an id may be missing. One that opens a
  // stream: the server cannot resume from the id the page sent (it
  // restarted, forgot the client, or has moved on), and the stream goes on;
  // in GET mode a client the server did not know has no run to come. One
  // that ends a stream: a server whose registry is shared through Redis
  // lost Redis, and can no longer tell what was missed. That event has no
  // id: EventSource reconnects with the last one. The run is over, but in
  // GET mode the button stays off until the browser has reconnected (the
  // error event comes next, then the open, or CLOSED).
  const onGap = (e) => {
    showFrame(e);
    const data = JSON.parse(e.data);
    const id = String(data.last_event_id ?? (e.lastEventId || "–"));
    if (sinceOpen === 0) {
      showMark("gap", "gapOpen", { id, reason: data.reason });
      if (mode === "get" && data.reason === "unknown client") running = false;
      showState();
      return;
    }
    showMark("gap", mode === "get" ? "gap" : "gapFetch", { id });
    running = false;
  };

  // connect opens the EventSource, after the event last if given. After a
  // dropped connection the browser reconnects by itself, sending
  // Last-Event-ID; after "close" the page closes the EventSource, or the
  // browser would reconnect. A new EventSource cannot set that header, so
  // a page that reopens its stream to resume names the id in the query.
  const connect = (last = null) => {
    es = new EventSource(last === null ? pushURL : `${pushURL}&lastEventId=${last}`);
    showState();
    es.addEventListener("open", () => {
      noteOpen();
      showState();
    });
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED) {
        // EventSource does not say why; with a token, ask the server.
        if (authOn) {
          checkToken();
        } else {
          running = false;
          showMark("error", "failed");
        }
      } else if (lostAt === null) {
        lostAt = performance.now();
        showMark("error", "lost");
      }
      showState();
    });
    es.addEventListener("update", onUpdate);
    es.addEventListener("gap", onGap); // the error event that follows shows the state
    es.addEventListener("close", (e) => {
      onClose(e);
      showState();
    });
  };

  // opened resolves when the EventSource opens, and fails if it gives up.
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

  // parser reads an event stream as the WHATWG spec says ("Interpreting an
  // event stream"): lines end with CRLF, LF or CR; a line that starts with
  // a colon is a comment; one space after a field's colon is dropped; data
  // lines join with LF; an id with NUL is ignored; retry is taken only when
  // it is all digits; a blank line dispatches the event, unless its data is
  // empty. feed takes text as it arrives, in pieces of any size.
  const parser = ({ onEvent, onRetry, onComment }) => {
    let buffer = "";
    let started = false;
    let type = "";
    let data = [];
    let last = previousId === null ? "" : String(previousId);
    const line = (l) => {
      if (l === "") {
        if (data.length > 0) onEvent({ type: type || "message", data: data.join("\n"), lastEventId: last });
        type = "";
        data = [];
        return;
      }
      if (l[0] === ":") {
        onComment(l.slice(1).replace(/^ /, ""));
        return;
      }
      const colon = l.indexOf(":");
      const field = colon < 0 ? l : l.slice(0, colon);
      const value = colon < 0 ? "" : l.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) last = value;
      else if (field === "retry" && /^\d+$/.test(value)) onRetry(Number(value));
    };
    return (chunk) => {
      buffer += chunk;
      if (!started && buffer.length > 0) {
        started = true;
        if (buffer[0] === "\uFEFF") buffer = buffer.slice(1);
      }
      for (;;) {
        const end = buffer.search(/[\r\n]/);
        // A CR at the end may be the first half of a CRLF: wait for more.
        if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) return;
        line(buffer.slice(0, end));
        buffer = buffer.slice(buffer[end] === "\r" && buffer[end + 1] === "\n" ? end + 2 : end + 1);
      }
    };
  };

  // postStream POSTs the run and reads its stream, as fetch-event-source
  // does: with Accept: text/event-stream, and on a retry with the
  // Last-Event-ID of the last event it got, so the server resumes the run
  // rather than starting another. It retries after the retry: the server
  // sent, and stops on close, on 204 and on an error answer.
  let retryMs = 3000;
  const postStream = async () => {
    const controller = new AbortController();
    abortFetch = () => controller.abort();
    fetchState = EventSource.CONNECTING;
    showState();
    let ended = null; // what ended the stream: "close", "gap", a 204; null for a drop
    try {
      const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
      if (previousId !== null) headers["Last-Event-ID"] = String(previousId);
      if (token) headers.Authorization = `Bearer ${token}`;
      const res = await fetch("/event/progress", {
        method: "POST",
        headers,
        body: JSON.stringify({ id: Number(id) }),
        signal: controller.signal,
      });
      if (res.status === 204) {
        showMark("closed", "finished");
        running = false;
        ended = "204";
      } else if (res.status === 401) {
        const reply = await res.json().catch(() => ({}));
        refused(reply.error || res.statusText);
        fetchState = EventSource.CLOSED;
        showState();
        return;
      } else if (!res.ok) {
        const reply = await res.json().catch(() => ({}));
        throw new Error(`${res.status} ${reply.error || res.statusText}`);
      } else {
        fetchState = EventSource.OPEN;
        noteOpen();
        showState();
        const feed = parser({
          onEvent: (e) => {
            const handle = { update: onUpdate, close: onClose, gap: onGap }[e.type];
            if (!handle) return;
            handle(e);
            // After close or gap the server ends the response, and the
            // state is shown then.
            if (e.type !== "update") ended = e.type;
          },
          onRetry: (ms) => {
            retryMs = ms;
            showRaw("retry", "retry", { ms });
          },
          onComment: (comment) => showRaw("comment", "comment", { text: comment }),
        });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          feed(value);
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return; // the page left, or switched mode
      if (!(err instanceof TypeError)) {
        // An answer that is not a stream: the server said no.
        running = false;
        fetchState = EventSource.CLOSED;
        fail(err);
        showState();
        return;
      }
      // A TypeError is a network failure: reconnect, as after a drop.
    }
    if (controller.signal.aborted) return;
    if (ended !== null) {
      fetchState = EventSource.CLOSED;
      showState();
      return;
    }
    // Dropped without close: wait the retry delay, then POST again.
    lostAt = performance.now();
    fetchState = EventSource.CONNECTING;
    showMark("error", "lostFetch", { ms: retryMs });
    showState();
    await new Promise((resolve) => setTimeout(resolve, retryMs));
    if (!controller.signal.aborted) postStream();
  };

  // post sends a request and fails with the server's JSON error, if any.
  const post = async (url, body) => {
    const headers = body ? { "Content-Type": "application/json" } : {};
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(url, { method: "POST", headers, body: body ? JSON.stringify(body) : null });
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
      showCount(0);
      run = { updates: 0, missing: 0, repeated: 0, seen: new Set() };
      showTally();
      if (mode === "post") {
        // A new run: no Last-Event-ID, or the server would resume the last.
        previousId = null;
        showMark("post", "startedFetch");
        postStream();
        return;
      }
      if (es.readyState === EventSource.CLOSED) {
        // The last run closed the stream: open a new one first.
        connect();
        await opened();
      }
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

  // setMode switches how the page reads the run. One client reads its run
  // one way at a time: a second stream of the same id replaces the first,
  // so the EventSource is closed in POST mode, or the two would replace
  // each other in turn.
  const setMode = (next) => {
    if (next === mode) return;
    mode = next;
    abortFetch?.();
    abortFetch = null;
    fetchState = EventSource.CLOSED;
    lostAt = null;
    if (mode === "post") {
      es?.close();
      showMark("mode", "modePost");
    } else {
      showMark("mode", "modeGet");
      connect();
    }
    showState();
  };

  // The token, with a server that wants one.

  // refused notes a 401: the page reads nothing more until a sign-in.
  const refused = (reason) => {
    waitingForToken = true;
    showMark("error", "tokenRefused", { reason });
    say(who, "tokenNeeded", { reason });
    showState();
  };

  // checkToken asks the server whether the session still holds, after an
  // EventSource gave up: a 401 is the likely reason.
  const checkToken = async () => {
    const res = await fetch("/auth/session");
    if (res.status === 401) {
      const reply = await res.json().catch(() => ({}));
      refused(reply.error || res.statusText);
      return;
    }
    running = false;
    showMark("error", "failed");
    showState();
  };

  const signedIn = (info) => {
    waitingForToken = false;
    say(who, "signedIn", { subject: info.subject, until: new Date(info.expires).toLocaleTimeString() });
    showState();
  };

  // signIn turns the pasted token into the session cookie, and then reads
  // the run again where it was: a stream ended by an expired token resumes
  // with every count once.
  const signIn = async () => {
    const pasted = tokenInput.value.trim();
    const res = await fetch("/auth/session", { method: "POST", headers: { Authorization: `Bearer ${pasted}` } });
    const reply = await res.json().catch(() => ({}));
    if (!res.ok) {
      say(who, "tokenNeeded", { reason: reply.error || res.statusText });
      return;
    }
    token = pasted;
    const wasWaiting = waitingForToken;
    signedIn(reply);
    if (mode === "get") {
      if (!es || es.readyState === EventSource.CLOSED) {
        if (wasWaiting && previousId !== null && running) showMark("open", "resumed", { id: previousId });
        connect(running ? previousId : null);
      }
    } else if (running && fetchState === EventSource.CLOSED) {
      showMark("open", "resumed", { id: previousId ?? "–" });
      postStream();
    }
  };

  const signOut = async () => {
    await fetch("/auth/session", { method: "DELETE" });
    token = null;
    es?.close();
    abortFetch?.();
    fetchState = EventSource.CLOSED;
    running = false;
    refused("signed out");
  };

  signInButton.addEventListener("click", signIn);
  signOutButton.addEventListener("click", signOut);
  tokenInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") signIn();
  });

  button.addEventListener("click", start);
  dropButton.addEventListener("click", drop);
  for (const input of modeInputs) {
    input.addEventListener("change", () => {
      if (input.checked) setMode(input.value);
    });
  }

  // Tell the server the client is gone. keepalive lets the request outlive
  // the page.
  window.addEventListener("pagehide", () => {
    es?.close();
    abortFetch?.();
    fetch(`/event/remove?id=${encodeURIComponent(id)}`, { keepalive: true }).catch(() => {});
  });

  // Before it opens a stream, the page asks whether the server wants a
  // token, and whether this browser's session cookie still holds one.
  showLanguage();
  (async () => {
    const res = await fetch("/auth/session").catch(() => null);
    const reply = res ? await res.json().catch(() => ({})) : {};
    if (res?.status === 401) {
      authOn = true;
      waitingForToken = true;
      say(who, "tokenNeeded", { reason: reply.error || res.statusText });
      showState();
      return;
    }
    if (reply.auth === "on") {
      authOn = true;
      signedIn(reply);
    }
    connect();
  })();
})();
