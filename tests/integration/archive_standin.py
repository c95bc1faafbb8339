"""A mailing-list archive on 127.0.0.1 that answers ``b4`` the way lore.kernel.org does.

``b4 am <Message-ID>`` with ``b4.midmask = <url>/all/%s`` asks for
``<url>/all/<quote_plus(Message-ID)>/t.mbox.gz``: the whole thread holding that message,
as a gzip-compressed mboxrd (public-inbox's format: every message starts with
``From mboxrd@z Thu Jan  1 00:00:00 1970``, and a body line ``>*From `` gets one more
``>``). An unknown Message-ID is a 404, as on lore. ``/all/<id>/`` answers 200 (``HEAD``
too) and ``/r/<id>`` redirects there, like the archive's permalinks.

Messages are kept as bytes, exactly as sent; :meth:`Archive.replace` changes one of
them on the server (a tampered thread). Every request path is recorded in
:attr:`Archive.requests`.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_PARSER = email.parser.BytesParser(policy=email.policy.compat32)
_MSGID = re.compile(r"<([^<>\s]+)>")
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)
MBOXRD_FROM = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n"


def message_id(raw: bytes) -> str:
    """The Message-ID of a raw message, without angle brackets."""
    found = _MSGID.findall(str(_PARSER.parsebytes(raw, headersonly=True).get("Message-ID", "")))
    if not found:
        raise ValueError("message without a Message-ID")
    return str(found[0])


def _parents(raw: bytes) -> list[str]:
    headers = _PARSER.parsebytes(raw, headersonly=True)
    refs = " ".join(str(headers.get(key, "")) for key in ("In-Reply-To", "References"))
    return [str(m) for m in _MSGID.findall(refs)]


def split_format_patch(data: bytes) -> list[bytes]:
    """The messages of ``git format-patch --stdout`` output, without their ``From `` lines."""
    parts = re.split(rb"^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001\n", data, flags=re.MULTILINE)
    return [part for part in parts if part.strip()]


def mboxrd(messages: list[bytes]) -> bytes:
    """Messages as public-inbox's mboxrd."""
    out = b""
    for raw in messages:
        body = _FROM_LINE.sub(rb">\1", raw)
        out += MBOXRD_FROM + body + (b"" if body.endswith(b"\n") else b"\n") + b"\n"
    return out


class Archive:
    """The archive: a thread store and an HTTP server on 127.0.0.1 (any free port)."""

    def __init__(self) -> None:
        self.messages: dict[str, bytes] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        archive = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                archive._answer(self, body=True)

            def do_HEAD(self) -> None:
                archive._answer(self, body=False)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Archive:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def add(self, raw: bytes) -> str:
        """Archive one message; returns its Message-ID."""
        msgid = message_id(raw)
        with self._lock:
            self.messages[msgid] = raw
        return msgid

    def replace(self, msgid: str, raw: bytes) -> bytes:
        """Put *raw* in place of the message *msgid*; returns what was there."""
        with self._lock:
            old = self.messages[msgid]
            self.messages[msgid] = raw
        return old

    def thread(self, msgid: str) -> list[bytes]:
        """Every message of the thread holding *msgid* (archive order), or [] if unknown."""
        with self._lock:
            messages = dict(self.messages)
        if msgid not in messages:
            return []
        parents = {mid: _parents(raw) for mid, raw in messages.items()}

        def root(mid: str) -> str:
            seen = set()
            while parents.get(mid) and mid not in seen:
                seen.add(mid)
                known = [p for p in parents[mid] if p in messages]
                if not known:
                    break
                mid = known[0]
            return mid

        top = root(msgid)
        return [raw for mid, raw in messages.items() if root(mid) == top]

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append(handler.path)
        path = urllib.parse.urlsplit(handler.path).path
        match = re.fullmatch(r"/(all|r)/([^/]+)(/t\.mbox\.gz|/)?", path)
        msgid = urllib.parse.unquote_plus(match[2]) if match else ""
        thread = self.thread(msgid) if match else []
        if not thread:
            self._send(handler, 404, b"Not Found\n", "text/plain", body)
        elif match and match[1] == "r":
            handler.send_response(302)
            handler.send_header("Location", f"{self.url}/all/{match[2]}/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif match and match[3] == "/t.mbox.gz":
            data = gzip.compress(mboxrd(thread), mtime=0)
            self._send(handler, 200, data, "application/gzip", body)
        else:
            self._send(handler, 200, f"<html>{msgid}</html>\n".encode(), "text/html", body)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, data: bytes, kind: str, body: bool
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)
