#!/usr/bin/env python3
"""Test servers for dynsecret's verify tests. Each listens on a free loopback port and prints that port on
the first line of standard output. LOG files get one JSON object per line.

registry_token_server.py USERS.json SIGNING_KEY.pem SIGNING_CERT.pem ISSUER [DELAY_SECONDS]
    A token server for the distribution registry's `auth: token` mode. USERS.json maps a user name to
    {"password": ..., "pull": [repository names or "*"]}; the entry "" (no password) is the anonymous user,
    whose token is granted to requests without credentials. GET /token?service=S&scope=repository:NAME:pull
    with Basic auth answers {"token", "access_token", "expires_in", "issued_at"}; the token grants pull only on
    repositories the user may pull (an empty access list otherwise), as a registry's token service does.
    Unknown users, wrong passwords and (without an anonymous entry) requests without credentials get 401.
    Tokens are RS256 JWTs with the signing certificate in the x5c header.

registry_token_server.py record UPSTREAM_PORT LOG
    An HTTP reverse proxy to 127.0.0.1:UPSTREAM_PORT that logs each request's method, path and Authorization
    scheme ({"method", "path", "authorization": "Basic" | "Bearer" | null}).

registry_token_server.py sniff UPSTREAM_PORT LOG
    A TCP proxy for a TLS registry: connections that start with a TLS handshake are piped to
    127.0.0.1:UPSTREAM_PORT ({"kind": "tls"}); a plaintext HTTP request is logged ({"kind": "plain", "line"})
    and answered like a registry allowing anonymous access, so an HTTP fallback cannot go unnoticed.

registry_token_server.py echo basic|bearer LOG
    A fake registry whose error answers quote the secrets it was sent: the password, the Basic credential and
    (bearer) the token it issued from its own /token realm. The user name selects the answer: u401, u403 or
    u500 for GET /v2/ and manifests, and (bearer) reject (401) or tok403 (403) from the token realm.
    Each echoed answer is logged ({"echo": status, "token": token or null}).
"""
import base64
import http.client
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Log:
    """Appends JSON lines to a file, one write per event."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, event):
        with self.lock:
            self.file.write(json.dumps(event) + "\n")
            self.file.flush()


def basic_credentials(header):
    """(user, password, base64) from a Basic Authorization header, or None."""
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except Exception:
        return None
    return user, password, header[6:]


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry_api = True  # answers carry the distribution API version header

    def log_message(self, *args):
        pass

    def reply(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.registry_api:
            self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def serve(handler):
    ThreadingHTTPServer.request_queue_size = 128  # 20 registries ask at once
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# MARK: record


def run_record(upstream, log):
    hop = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te", "trailer"}

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self):
            auth = self.headers.get("Authorization")
            log.write({"method": self.command, "path": self.path, "authorization": auth.split(" ")[0] if auth else None})
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop and k.lower() != "host"}
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
            finally:
                conn.close()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in hop | {"date", "server"} and (k.lower() != "content-length" or self.command == "HEAD"):
                    self.send_header(k, v)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

    serve(Proxy)


# MARK: sniff


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def tunnel(conn, upstream):
    """Pipes bytes both ways between conn and 127.0.0.1:upstream until either side closes."""
    up = socket.create_connection(("127.0.0.1", upstream), timeout=30)
    conn.settimeout(None)
    up.settimeout(None)
    t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    t.start()
    pipe(conn, up)
    t.join(30)
    up.close()


def read_head(conn):
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = conn.recv(4096)
        if not data:
            break
        head += data
    return head


def listen_forever(handle):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def run_sniff(upstream, log):
    def handle(conn):
        try:
            conn.settimeout(30)
            first = conn.recv(1, socket.MSG_PEEK)
            if not first:
                return conn.close()
            if first[0] == 0x16:  # a TLS handshake record
                log.write({"kind": "tls"})
                tunnel(conn, upstream)
                return conn.close()
            head = read_head(conn)
            log.write({"kind": "plain", "line": head.split(b"\r\n", 1)[0].decode("latin-1")})
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDocker-Distribution-Api-Version: registry/2.0\r\n"
                         b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
        except OSError:
            pass
        conn.close()

    listen_forever(handle)


# MARK: connect


def run_connect(upstream, log):
    """An HTTP CONNECT proxy that logs each request line and tunnels every CONNECT to 127.0.0.1:UPSTREAM."""

    def handle(conn):
        try:
            conn.settimeout(30)
            head = read_head(conn)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            log.write({"line": line})
            if line.startswith("CONNECT "):
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                tunnel(conn, upstream)
            else:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        conn.close()

    listen_forever(handle)


# MARK: echo


def run_echo(mode, log):
    issued = {}  # token -> (user, password, base64 credential)
    issued_lock = threading.Lock()

    class Echo(JSONHandler):
        def echo(self, status, who, token):
            user, password, credential = who
            log.write({"echo": status, "token": token})
            errors = [{"code": {401: "UNAUTHORIZED", 403: "DENIED"}.get(status, "UNKNOWN"), "message": "ECHO password=" + password},
                      {"code": "UNAUTHORIZED", "message": "ECHO credential=" + credential}]
            if token:
                errors.append({"code": "DENIED", "message": "ECHO token=" + token})
            extra = [("WWW-Authenticate", 'Basic realm="echo"')] if status == 401 and mode == "basic" else []
            self.reply(status, {"errors": errors}, extra)

        def challenge(self):
            if mode == "basic":
                value = 'Basic realm="echo"'
            else:
                value = 'Bearer realm="http://127.0.0.1:%d/token",service="echo"' % self.server.server_address[1]
            self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, [("WWW-Authenticate", value)])

        def do_GET(self):
            url = urlparse(self.path)
            auth = self.headers.get("Authorization", "")
            if mode == "bearer" and url.path == "/token":
                who = basic_credentials(auth)
                if who is None:
                    return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "credentials required"}]})
                if who[0] in ("reject", "tok403"):
                    return self.echo(401 if who[0] == "reject" else 403, who, None)
                claims = b64url(json.dumps({"sub": who[0], "jti": os.urandom(6).hex()}).encode())
                token = b64url(b'{"alg":"none","typ":"JWT"}') + "." + claims + "." + b64url(os.urandom(12))
                with issued_lock:
                    issued[token] = who
                return self.reply(200, {"token": token, "access_token": token, "expires_in": 300})
            if not url.path.startswith("/v2/"):
                return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            if mode == "basic":
                who, token = basic_credentials(auth), None
            else:
                token = auth[7:] if auth.startswith("Bearer ") else None
                with issued_lock:
                    who = issued.get(token)
            if who is None:
                return self.challenge()
            self.echo({"u401": 401, "u403": 403}.get(who[0], 500), who, token)

        do_HEAD = do_GET

    serve(Echo)


# MARK: token server


def run_token_server():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    users = json.load(open(sys.argv[1]))
    key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), password=None)
    cert = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
    issuer = sys.argv[4]
    delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    counter = [0]
    lock = threading.Lock()

    def sign(claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(cert_der).decode()]}
        payload = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        return payload + "." + b64url(signature)

    class Handler(JSONHandler):
        registry_api = False  # a token server, not a registry

        def do_GET(self):
            if delay:
                time.sleep(delay)
            url = urlparse(self.path)
            if url.path != "/token":
                return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
            query = parse_qs(url.query)
            auth = self.headers.get("Authorization", "")
            user = None
            who = basic_credentials(auth)
            if who is not None:
                entry = users.get(who[0])
                if entry is not None and entry.get("password") is not None and entry["password"] == who[1]:
                    user = who[0]
            elif not auth and "" in users:
                user = ""  # anonymous: the token grants what the "" entry may pull
            if user is None:
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]},
                                  [("WWW-Authenticate", 'Basic realm="token"')])
            allowed = users[user].get("pull", [])
            access = []
            for scope in query.get("scope", []):
                for one in scope.split(" "):
                    parts = one.split(":")
                    if len(parts) != 3 or parts[0] != "repository":
                        continue
                    name, actions = parts[1], parts[2].split(",")
                    if "pull" in actions and ("*" in allowed or name in allowed):
                        access.append({"type": "repository", "name": name, "actions": ["pull"]})
            now = int(time.time())
            with lock:
                counter[0] += 1
                jti = "%d-%d" % (os.getpid(), counter[0])
            claims = {"iss": issuer, "sub": user, "aud": query.get("service", [""])[0], "exp": now + 300,
                      "nbf": now - 10, "iat": now, "jti": jti, "access": access}
            token = sign(claims)
            self.reply(200, {"token": token, "access_token": token, "expires_in": 300,
                             "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})

    serve(Handler)


# MARK: flood


def run_flood(log):
    """A registry whose /v2/ challenge sends clients to a token realm that streams JSON without end."""

    class Flood(JSONHandler):
        def do_GET(self):
            if not self.path.startswith("/token"):
                value = 'Bearer realm="http://127.0.0.1:%d/token",service="flood"' % self.server.server_address[1]
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                  [("WWW-Authenticate", value)])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            chunk = b'{"token":"' + b"x" * (1 << 20)
            try:
                while sent < (1 << 30):
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            log.write({"sent": sent})
            self.close_connection = True

    serve(Flood)


# MARK: redirect


def run_redirect(upstream, log):
    """Answers every request with 307 to the same path on 127.0.0.1:UPSTREAM (another host:port), logging it."""

    class Redirect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def redirect(self):
            auth = self.headers.get("Authorization")
            log.write({"method": self.command, "path": self.path, "authorization": auth.split(" ")[0] if auth else None})
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.1:%d%s" % (upstream, self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = redirect

    serve(Redirect)


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "redirect":
        run_redirect(int(sys.argv[2]), Log(sys.argv[3]))
    elif role == "record":
        run_record(int(sys.argv[2]), Log(sys.argv[3]))
    elif role == "sniff":
        run_sniff(int(sys.argv[2]), Log(sys.argv[3]))
    elif role == "connect":
        run_connect(int(sys.argv[2]), Log(sys.argv[3]))
    elif role == "flood":
        run_flood(Log(sys.argv[3]))
    elif role == "echo":
        run_echo(sys.argv[2], Log(sys.argv[3]))
    else:
        run_token_server()
