"""A client for jetrtd, jetrt's on-device daemon (standard library only).

    from jetrt_client import Client

    with Client() as c:               # $JETRTD_SOCKET, else /run/jetrtd/jetrtd.sock
        c.subscribe("collision")
        while True:
            r = c.next_result(timeout=1.0)
            if r is None or r.age > 0.25:
                stop_motors()          # no fresh result: do not drive blind
                continue
            p_blocked = r.probs[0]   # JetBot: class 0 is "blocked"

Every result carries `age`: seconds since its frame was captured, measured
on this machine's clock, so a motor loop can refuse stale data.

The wire protocol (docs/protocol.md): each frame is a 4-byte big-endian
length and that many bytes; a JSON message, or a binary payload that the
JSON message before it announces.
"""

import json
import os
import socket
import struct
import time

__all__ = ["Client", "Result", "DaemonError", "ConnectionLost"]

PROTOCOL_VERSION = 1
# Where jetrtd listens unless JETRTD_SOCKET (as jetrtctl reads it) says otherwise.
DEFAULT_SOCKET = "/run/jetrtd/jetrtd.sock"
_MAX_FRAME = 1 << 30


class DaemonError(Exception):
    """The daemon answered a request with an error message."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class ConnectionLost(Exception):
    """The connection closed or failed; `Client.reconnect()` opens a new one."""


class Result:
    """A pipeline's result: the JSON message, the binary payload if any."""

    def __init__(self, msg, binary=None):
        self.msg = msg
        self.binary = binary
        self.received = time.time()

    pipeline = property(lambda self: self.msg.get("pipeline"))
    seq = property(lambda self: self.msg.get("seq"))
    timestamp = property(lambda self: self.msg.get("timestamp"))
    latency_ms = property(lambda self: self.msg.get("latency_ms"))
    output = property(lambda self: self.msg.get("output", {}))

    @property
    def age(self):
        """Seconds since the frame was captured (now, not at receipt)."""
        return time.time() - (self.timestamp or 0.0)

    @property
    def probs(self):
        """Class probabilities of a `topk` result (with `probs` on)."""
        return self.output.get("probs")

    @property
    def top(self):
        """[(index, label, score)] of a `topk` result, best first."""
        return [(c["index"], c.get("label"), c["score"]) for c in self.output.get("top", [])]

    @property
    def tensors(self):
        """{name: flat list of values} of a `raw` result."""
        return {t["name"]: t["data"] for t in self.output.get("tensors", [])}

    def __repr__(self):
        return "Result(pipeline=%r, seq=%r, age=%.3fs)" % (self.pipeline, self.seq, self.age)


class Client:
    """A connection to jetrtd. Requests wait at most `timeout` seconds for
    their reply; results of subscriptions that arrive meanwhile are kept
    for `next_result`. After a lost connection, `reconnect()` (or any
    request, with `auto_reconnect`) connects again and renews the
    subscriptions. `path` defaults to $JETRTD_SOCKET, else DEFAULT_SOCKET."""

    def __init__(self, path=None, timeout=5.0, name="python", auto_reconnect=True):
        self.path = path or os.environ.get("JETRTD_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        self.name = name
        self.auto_reconnect = auto_reconnect
        self.subscriptions = []
        self.server = None
        self._sock = None
        self._pending = []
        self._next_id = 1
        self.connect()

    # -- connection -------------------------------------------------------

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise ConnectionLost("cannot connect to %s: %s (is jetrtd running?)" % (self.path, e))
        self._sock = s
        self._pending = []
        self.server = self._call({"op": "hello", "client": self.name,
                                  "protocol": PROTOCOL_VERSION})
        for p in self.subscriptions:
            self._call({"op": "subscribe", "pipeline": p})

    def reconnect(self, attempts=10, delay=0.5):
        """Reconnects, retrying `attempts` times `delay` seconds apart."""
        self.close()
        last = None
        for _ in range(attempts):
            try:
                self.connect()
                return
            except (ConnectionLost, OSError) as e:
                last = e
                time.sleep(delay)
        raise ConnectionLost("could not reconnect to %s: %s" % (self.path, last))

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- framing ----------------------------------------------------------

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self._sock.recv(n - len(buf))
            except socket.timeout:
                if buf:
                    # A frame cut mid-way cannot be resumed.
                    self.close()
                    raise ConnectionLost("timed out in the middle of a frame")
                raise
            if not chunk:
                self.close()
                raise ConnectionLost("the daemon closed the connection")
            buf += chunk
        return bytes(buf)

    def _read_frame(self):
        (n,) = struct.unpack(">I", self._read_exact(4))
        if n > _MAX_FRAME:
            self.close()
            raise ConnectionLost("a frame of %d bytes is too large" % n)
        return self._read_exact(n)

    def _read_message(self):
        msg = json.loads(self._read_frame().decode("utf-8"))
        binary = self._read_frame() if "binary" in msg else None
        return msg, binary

    def _send(self, msg, binary=None):
        if self._sock is None:
            if not self.auto_reconnect:
                raise ConnectionLost("not connected")
            self.reconnect()
        data = json.dumps(msg).encode("utf-8")
        out = struct.pack(">I", len(data)) + data
        if binary is not None:
            out += struct.pack(">I", len(binary)) + bytes(binary)
        try:
            self._sock.sendall(out)
        except OSError as e:
            self.close()
            raise ConnectionLost("send failed: %s" % e)

    def _call(self, msg, binary=None):
        msg = dict(msg, id=self._next_id)
        self._next_id += 1
        self._send(msg, binary)
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply to %r within %.1f s" % (msg["op"], self.timeout))
            try:
                reply, payload = self._read_message()
            except socket.timeout:
                raise TimeoutError("no reply to %r within %.1f s" % (msg["op"], self.timeout))
            if reply.get("id") == msg["id"]:
                if reply.get("type") == "error":
                    raise DaemonError(reply.get("code"), reply.get("message"))
                return reply if payload is None else (reply, payload)
            self._pending.append((reply, payload))

    # -- requests ---------------------------------------------------------

    def list(self):
        return self._call({"op": "list"})

    def stats(self):
        return self._call({"op": "stats"})

    def subscribe(self, pipeline):
        self._call({"op": "subscribe", "pipeline": pipeline})
        if pipeline not in self.subscriptions:
            self.subscriptions.append(pipeline)

    def unsubscribe(self, pipeline):
        self._call({"op": "unsubscribe", "pipeline": pipeline})
        if pipeline in self.subscriptions:
            self.subscriptions.remove(pipeline)

    def infer(self, pipeline, pixels, width, height, format="rgb"):
        """Runs `pipeline` on an image: packed bytes in `format` (rgb, bgr,
        gray, yuyv, nv12, i420) or a JPEG with format="mjpeg"."""
        r = self._call({"op": "infer", "pipeline": pipeline,
                        "image": {"format": format, "width": width, "height": height}}, pixels)
        return Result(*r) if isinstance(r, tuple) else Result(r)

    def infer_tensor(self, pipeline, values, shape):
        """Runs `pipeline`'s engine on a float32 tensor (no preprocessing)."""
        data = struct.pack("<%df" % len(values), *values)
        r = self._call({"op": "infer", "pipeline": pipeline,
                        "tensor": {"dtype": "float32", "shape": list(shape)}}, data)
        return Result(*r) if isinstance(r, tuple) else Result(r)

    def push(self, source, pixels, width, height, format="rgb"):
        """Pushes a frame to a `push` source; returns its sequence number."""
        r = self._call({"op": "push", "source": source,
                        "image": {"format": format, "width": width, "height": height}}, pixels)
        return r["seq"]

    def next_result(self, timeout=None):
        """The next result of a subscription, or None after `timeout`
        seconds (default: the client's timeout). Reconnects once if the
        connection was lost and `auto_reconnect` is on."""
        while True:
            if self._pending:
                msg, payload = self._pending.pop(0)
            else:
                if self._sock is None:
                    if not self.auto_reconnect:
                        raise ConnectionLost("not connected")
                    self.reconnect()
                self._sock.settimeout(self.timeout if timeout is None else timeout)
                try:
                    msg, payload = self._read_message()
                except socket.timeout:
                    return None
                finally:
                    if self._sock is not None:
                        self._sock.settimeout(self.timeout)
            if msg.get("type") == "result":
                return Result(msg, payload)
