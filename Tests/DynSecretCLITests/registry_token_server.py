#!/usr/bin/env python3
"""A token server for the distribution registry's `auth: token` mode, for dynsecret's verify tests.

Usage: registry_token_server.py USERS.json SIGNING_KEY.pem SIGNING_CERT.pem ISSUER [DELAY_SECONDS]

USERS.json maps a user name to {"password": ..., "pull": [repository names or "*"]}. The server listens
on a free loopback port and prints that port on the first line of standard output.
GET /token?service=S&scope=repository:NAME:pull with Basic auth answers {"token", "access_token",
"expires_in", "issued_at"}; the token grants pull only on repositories the user may pull (an empty
access list otherwise), as a registry's token service does. Unknown users and wrong passwords get 401.
Tokens are RS256 JWTs with the signing certificate in the x5c header.
"""
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if delay:
            time.sleep(delay)
        url = urlparse(self.path)
        if url.path != "/token":
            return self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such path"}]})
        query = parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            try:
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                name, password = "", ""
            entry = users.get(name)
            if entry is not None and entry["password"] == password:
                user = name
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


ThreadingHTTPServer.request_queue_size = 128  # 20 registries ask at once
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
