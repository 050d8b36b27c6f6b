// The page's side of the SSE contract, in plain JavaScript.
"use strict";

(() => {
  // A fresh client id per page, as the Koa demo does.
  const id = String(Date.now());
  const pushURL = `/event/push?id=${encodeURIComponent(id)}`;

  const button = document.getElementById("sse");
  const count = document.querySelector(".progress");
  const bar = document.getElementById("bar");
  const state = document.getElementById("state");
  const lastId = document.getElementById("last-id");
  document.getElementById("client-id").textContent = id;

  let es = null;
  let running = false;

  const showState = (name) => {
    state.textContent = name;
    state.dataset.state = name;
  };

  const showCount = (n) => {
    count.textContent = String(n);
    bar.value = n;
    bar.textContent = `${n}%`;
  };

  // The button is off while a run goes and while the browser connects. On
  // a closed stream it stays on: a click opens a new stream first.
  const refreshButton = () => {
    button.disabled = running || es.readyState === EventSource.CONNECTING;
  };

  // connect opens the stream. The browser reconnects by itself after a
  // dropped connection, sending Last-Event-ID; after "close" the page closes
  // the EventSource, or the browser would reconnect.
  const connect = () => {
    es = new EventSource(pushURL);
    showState("connecting");
    es.addEventListener("open", () => {
      showState("open");
      refreshButton();
    });
    es.addEventListener("error", () => {
      showState(es.readyState === EventSource.CLOSED ? "closed" : "connecting");
      refreshButton();
    });
    es.addEventListener("update", (e) => {
      const data = JSON.parse(e.data);
      lastId.textContent = e.lastEventId;
      showCount(data.count);
    });
    es.addEventListener("close", (e) => {
      lastId.textContent = e.lastEventId;
      es.close();
      showState("closed");
      running = false;
      button.textContent = "Run again";
      refreshButton();
    });
  };

  const start = async () => {
    running = true;
    refreshButton();
    try {
      if (es.readyState === EventSource.CLOSED) {
        // The last run closed the stream: open a new one first.
        connect();
        await new Promise((resolve) => es.addEventListener("open", resolve, { once: true }));
      }
      showCount(0);
      const res = await fetch("/event/progress", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: Number(id) }),
      });
      if (!res.ok) {
        const body = await res.json().catch(() => ({}));
        throw new Error(body.error || res.statusText);
      }
    } catch (err) {
      running = false;
      state.textContent = `error: ${err.message}`;
      refreshButton();
    }
  };

  button.addEventListener("click", start);

  // Tell the server the client is gone. keepalive lets the request outlive
  // the page.
  window.addEventListener("pagehide", () => {
    if (es) es.close();
    fetch(`/event/remove?id=${encodeURIComponent(id)}`, { keepalive: true }).catch(() => {});
  });

  connect();
})();
