"""A WebSocket chat room: a page at ``/chat``, the WebSocket at ``/chat/ws``, one port.

Run it, then open ``http://127.0.0.1:8000/chat`` in two browser tabs:
    python examples/ws_chat.py --port 8000

It prints ``listening on http://HOST:PORT`` when ready. SIGINT or SIGTERM drains: every open
WebSocket is closed with 1001 (going away), and the process exits 0.

The wire format. A client sends text messages: ``/nick NAME`` renames it, anything else is
said to the room. The server sends one JSON object per text message::

    {"type": "message", "from": "ann", "text": "hi"}     # someone said something
    {"type": "notice", "text": "ann joined"}             # joins, leaves, renames, drops
    {"type": "error", "text": "nick is taken"}            # to the one client only

The room is one broadcast channel, as in ``chat_server.py``: every client has a reader (its
WebSocket in, the channel out) and a writer (the channel in, its WebSocket out), a message is
stored once however many clients there are, and a sender never waits for a slow client. A
client that falls ``backlog`` messages behind (it stopped reading, so its writer is stuck in
``send``) is dropped: the room gets a notice ``guest3 was dropped (too slow)``, and the
client's connection is closed. Its stuck send was cut short, perhaps in the middle of a frame,
after which no close frame can be framed, so the client sees the connection end (1006); a
client dropped between two sends gets close code 1008 with the reason. A message over
``max_message`` bytes closes that client with 1009.

``make_app()`` returns the routes as a :class:`~runtime.http.Router` (``/`` the page, ``/ws``
the WebSocket) to mount under any prefix; the page finds the WebSocket next to itself.
``python -m runtime demo`` mounts it at ``/chat`` on its HTTP port.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys

import attrs
import trio

import runtime
from runtime.http import (
    ConnectionClosed,
    HttpConfig,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketConfig,
    serve,
)
from runtime.net import TcpListener
from runtime.sync import EndOfChannel, Lagged, broadcast

logger = logging.getLogger("ws_chat")

NICK = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# The page: plain HTML and JS, no build step. It opens the WebSocket next to its own path
# (``/chat`` -> ``/chat/ws``), ws:// or wss:// as the page came.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trio-runtime chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 24em; overflow-y: auto; padding: .5em; }
  .notice { color: #666; font-style: italic; }
  .error { color: #b00; }
  form { display: flex; gap: .5em; margin-top: .5em; }
  #text { flex: 1; }
</style>
</head>
<body>
<h1>Chat</h1>
<div id="log"></div>
<form id="form"><input id="text" autocomplete="off" placeholder="say something, or /nick NAME">
<button>Send</button></form>
<p id="status">connecting...</p>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
const text = document.getElementById("text");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const path = location.pathname.replace(/\\/$/, "") + "/ws";
const ws = new WebSocket(scheme + location.host + path);
function show(cls, line) {
  const p = document.createElement("div");
  p.className = cls;
  p.textContent = line;
  log.appendChild(p);
  log.scrollTop = log.scrollHeight;
}
ws.onopen = () => { status.textContent = "connected"; };
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.type === "message") show("message", "<" + m.from + "> " + m.text);
  else show(m.type, m.text);
};
ws.onclose = (e) => {
  status.textContent = "closed: " + e.code + (e.reason ? " " + e.reason : "");
};
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  if (text.value && ws.readyState === WebSocket.OPEN) ws.send(text.value);
  text.value = "";
};
</script>
</body>
</html>
"""


@attrs.frozen
class Message:
    """One JSON text for the room; ``to`` set means for that client only."""

    text: str
    to: Client | None = None


@attrs.define(eq=False)
class Client:
    nick: str
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    sending: bool = False  # the writer is inside ws.send (blocked, if the peer stopped reading)
    dropped: bool = False


def _event(kind: str, text: str, sender: str | None = None) -> str:
    value = {"type": kind} if sender is None else {"type": kind, "from": sender}
    value["text"] = text
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class ChatRoom:
    """Who is here, and the broadcast channel they all read.

    Args:
        backlog: Messages a client may fall behind before it is dropped (the capacity of the
            broadcast channel, so a client never loses a message without being dropped).
            Default 64: a burst a browser tab absorbs easily.
        max_message: Longest message a client may send, in bytes (1009 beyond it).
        send_timeout: Seconds a close frame (or any send) may wait for a peer that stopped
            reading; then its connection is cut. Default 10 s.
    """

    def __init__(self, backlog: int = 64, max_message: int = 4096, send_timeout: float = 10.0):
        self.sender, first = broadcast.channel[Message](backlog, name="ws-chat")
        first.close()  # subscribers come and go with clients
        self.backlog = backlog
        self.config = WebSocketConfig(max_message_size=max_message, send_timeout=send_timeout)
        self.clients: dict[str, tuple[Client, broadcast.Receiver[Message]]] = {}
        self._guests = 0

    async def say(self, text: str, to: Client | None = None) -> None:
        """Send a JSON text to the room (or one client), then drop the clients that are stuck.

        Stuck means: the backlog is full *and* the writer is blocked in ``send``. A writer
        that is merely waiting for its turn to run is not stuck.
        """
        await self.sender.send(Message(text, to))
        for client, receiver in list(self.clients.values()):
            if receiver.pending() >= self.backlog and client.sending and not client.dropped:
                self.drop(client)

    def drop(self, client: Client) -> None:
        client.dropped = True
        client.scope.cancel()
        logger.warning("dropping %s: %d messages behind", client.nick, self.backlog)

    def join(self) -> tuple[Client, broadcast.Receiver[Message]]:
        self._guests += 1
        while f"guest{self._guests}" in self.clients:
            self._guests += 1
        client = Client(f"guest{self._guests}")
        receiver = self.sender.subscribe()
        self.clients[client.nick] = (client, receiver)
        return client, receiver

    def leave(self, client: Client) -> None:
        entry = self.clients.pop(client.nick, None)
        if entry is not None:
            entry[1].close()

    def rename(self, client: Client, nick: str) -> str | None:
        """Give ``client`` a new nick; returns an error text, or None when it worked."""
        if not NICK.match(nick):
            return "nicks are 1-32 letters, digits, '_' or '-'"
        if nick in self.clients:
            return f"{nick} is taken"
        self.clients[nick] = self.clients.pop(client.nick)
        client.nick = nick
        return None

    async def handle(self, ws: WebSocket) -> None:
        """Serve one client until it closes, is dropped, or the server drains."""
        client, receiver = self.join()
        try:
            with client.scope:
                # The writer is a member of this connection's JoinSet: it shows under the
                # connection in the admin's task tree, and leaving the block aborts it.
                async with runtime.JoinSet[None]() as tasks:
                    tasks.spawn(self._write, ws, client, receiver, name="ws-chat writer")
                    await self.say(_event("notice", f"{client.nick} joined"))
                    await self._read(ws, client)
        finally:
            self.leave(client)
            with trio.CancelScope(shield=True):
                if client.dropped:
                    await self.say(_event("notice", f"{client.nick} was dropped (too slow)"))
                    # Bounded by send_timeout: a peer that takes no bytes is cut off.
                    await ws.aclose(1008, f"too slow: {self.backlog} messages behind")
                else:
                    await self.say(_event("notice", f"{client.nick} left"))

    async def _read(self, ws: WebSocket, client: Client) -> None:
        async for message in ws:
            if not isinstance(message, str):
                await self.say(_event("error", "send text messages"), client)
            elif message.startswith("/nick "):
                old = client.nick
                error = self.rename(client, message[6:].strip())
                if error:
                    await self.say(_event("error", error), client)
                else:
                    await self.say(_event("notice", f"{old} is now known as {client.nick}"))
            else:
                await self.say(_event("message", message, client.nick))
            await runtime.yield_now()  # one message per turn: writers keep up with a burst

    async def _write(
        self, ws: WebSocket, client: Client, receiver: broadcast.Receiver[Message]
    ) -> None:
        while True:
            try:
                message = await receiver.recv()
            except Lagged:
                self.drop(client)  # say() drops laggards before this can happen; be safe
                return
            except EndOfChannel:
                return
            if message.to is None or message.to is client:
                client.sending = True
                try:
                    await ws.send(message.text)
                except ConnectionClosed:
                    client.scope.cancel()  # the reader sees the end too; don't wait for it
                    return
                finally:
                    client.sending = False


def make_app(room: ChatRoom | None = None) -> Router:
    """The chat's routes: ``GET /`` the page, ``/ws`` the WebSocket. Mount it (``/chat``)."""
    room = room or ChatRoom()
    page = PAGE.encode()
    router = Router()

    @router.get("/")
    async def chat_page(request: Request) -> Response:
        return Response.bytes(page, content_type="text/html; charset=utf-8")

    router.ws("/ws", room.handle, room.config)
    return router


async def main(args: argparse.Namespace) -> None:
    router = Router()
    router.mount("/chat", make_app(ChatRoom(backlog=args.backlog, max_message=args.max_message)))
    listener = TcpListener.bind(args.host, args.port)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on http://{host}:{listener.port}", flush=True)
    await serve(router, [listener], config=HttpConfig(name="ws_chat"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket chat on trio-runtime.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--backlog", type=int, default=64, help="messages before a client is dropped")
    p.add_argument("--max-message", type=int, default=4096, help="longest message, in bytes")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to drain on shutdown")
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        runtime.run(main, args, config=runtime.RuntimeConfig(shutdown_grace=args.grace))
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)
