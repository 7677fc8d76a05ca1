"""`custody witness serve`: the tlog-witness HTTP interface on the standard library's server."""

from __future__ import annotations

import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TextIO

from custody.witness.protocol import ADD_CHECKPOINT, MAX_BODY_BYTES
from custody.witness.state import WitnessDirError
from custody.witness.witness import Reply, Witness, text_reply

READ_TIMEOUT_S = 30  # a client that stops sending must not hold a thread forever


class WitnessServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness, log: TextIO) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self.witness = witness
        self.log = log

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    server_version = "custody-witness"
    protocol_version = "HTTP/1.1"  # keep-alive, as the spec recommends
    timeout = READ_TIMEOUT_S

    def do_POST(self) -> None:
        self._reply(self._handle())

    def do_GET(self) -> None:
        self._reply(text_reply(404, "not found", "GET"))

    def _handle(self) -> Reply:
        if self.path != ADD_CHECKPOINT:
            self.close_connection = True
            return text_reply(404, "not found", f"POST {self.path[:100]}")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            return text_reply(411 if length_text is None else 400, "a Content-Length is required")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body stays unread
            return text_reply(413, "request body is too large")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return text_reply(400, "request body is shorter than its Content-Length")
        try:
            return self.server.witness.add_checkpoint(body)
        except (WitnessDirError, OSError) as exc:
            # Fail closed: without its state the witness cosigns nothing. The cause is logged here.
            print(f"witness state error: {exc}", file=self.server.log, flush=True)
            return text_reply(500, "witness state is unavailable")

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)
        client = self.client_address[0]
        print(
            f"{client} {self.command} {self.path[:100]} {reply.status} {reply.detail}", file=self.server.log, flush=True
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _reply logs one line per request, with what was decided

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.client_address[0]} {format % args}", file=self.server.log, flush=True)


def serve(witness: Witness, host: str, port: int, ready: TextIO = sys.stdout, log: TextIO = sys.stderr) -> None:
    """Serve until SIGTERM or SIGINT; print the URL on `ready` once listening (port 0: any free)."""
    server = WitnessServer((host, port), witness, log)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"witness {witness.cosigner.name} listening on {server.url}", file=ready, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
