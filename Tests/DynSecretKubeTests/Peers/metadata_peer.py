#!/usr/bin/env python3
"""Loopback doubles of the credential services a pod or VM asks, each following its documented contract.

  AWS container credentials (EKS Pod Identity / ECS): GET /v1/credentials with `Authorization: <token>`
      (the token in argv[2]) -> {AccessKeyId, SecretAccessKey, Token, Expiration}; any other token -> 403.
  AWS IMDSv2: PUT /latest/api/token (X-aws-ec2-metadata-token-ttl-seconds required) -> session token;
      GET /latest/meta-data/iam/security-credentials/[ROLE] with X-aws-ec2-metadata-token -> role / credentials;
      no or wrong session token -> 401.
  Google metadata server: GET /computeMetadata/v1/instance/service-accounts/default/token with
      `Metadata-Flavor: Google` -> {access_token, expires_in, token_type}, answered with `Metadata-Flavor: Google`;
      without the header -> 403.
argv[1]: a JSON file {"aws": [key id, secret, session token], "google": access token}. Prints the port, then serves
until stdin closes. Every request is appended to argv[3] (method, path, and which auth header arrived).
"""
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

creds = json.load(open(sys.argv[1]))
container_token = sys.argv[2]
log_path = sys.argv[3]
imds_tokens = set()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def record(self):
        with open(log_path, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "authorization": self.headers.get("Authorization") == container_token,
                                "imdsToken": self.headers.get("X-aws-ec2-metadata-token") in imds_tokens,
                                "flavor": self.headers.get("Metadata-Flavor")}) + "\n")

    def answer(self, status, body, content_type="application/json", extra=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def aws_credentials(self):
        key, secret, token = creds["aws"]
        return json.dumps({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": key, "SecretAccessKey": secret, "Token": token,
                           "Expiration": "2099-01-01T00:00:00Z", "LastUpdated": "2026-01-01T00:00:00Z"})

    def do_PUT(self):
        self.record()
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            t = secrets.token_urlsafe(32)
            imds_tokens.add(t)
            return self.answer(200, t, "text/plain")
        self.answer(400, "bad request", "text/plain")

    def do_GET(self):
        self.record()
        if self.path == "/v1/credentials":
            if self.headers.get("Authorization") != container_token:
                return self.answer(403, json.dumps({"code": "AccessDenied", "message": "invalid authorization token"}))
            return self.answer(200, self.aws_credentials())
        if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") not in imds_tokens:
                return self.answer(401, "", "text/plain")
            role = self.path[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                return self.answer(200, "node-role", "text/plain")
            if role == "node-role":
                return self.answer(200, self.aws_credentials())
            return self.answer(404, "", "text/plain")
        if self.path == "/computeMetadata/v1/instance/service-accounts/default/token":
            if self.headers.get("Metadata-Flavor") != "Google":
                return self.answer(403, "Missing Metadata-Flavor:Google header.", "text/plain", [("Metadata-Flavor", "Google")])
            return self.answer(200, json.dumps({"access_token": creds["google"], "expires_in": 3599, "token_type": "Bearer"}),
                               extra=[("Metadata-Flavor", "Google")])
        self.answer(404, "not found", "text/plain")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
