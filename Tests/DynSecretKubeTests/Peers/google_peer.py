#!/usr/bin/env python3
"""A Google OAuth 2.0 token endpoint, STS and IAM Credentials double on loopback that checks what it is sent with
independent implementations (PyJWT over `cryptography`).

Generates an RSA key and writes a service-account key file (argv[1]) and an external_account file (argv[2]) naming
this server, with the subject token file argv[3]. Endpoints:
  POST /token: JWT bearer grant (RFC 7523): the assertion must verify RS256 with the key's public half, with
      iss = client_email, aud = this token URL, scope = cloud-platform, iat <= now < exp, exp - iat <= 3600, and the
      header's kid; then {access_token, expires_in: 3599, token_type: Bearer}, else 400 {error: invalid_grant}.
  POST /v1/token: STS token exchange (RFC 8693) for the external account: the subject token must be the file's.
  POST /v1/projects/-/serviceAccounts/SA:generateAccessToken: needs the STS token as Bearer.
argv[4]: the access token to hand out (tests put a canary in it). Prints the port, then serves until stdin closes.
"""
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

key_file, external_file, subject_file, access_token = sys.argv[1:5]
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
public = key.public_key()
pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
EMAIL = "puller@project.iam.gserviceaccount.com"
KID = "4f1d2c3b"
STS_TOKEN = "sts-federated-token"
state = {"grants": 0, "exchanges": 0, "impersonations": 0}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/stats":
            return self.answer(200, state)
        self.answer(404, {"error": "not_found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path == "/token":
            form = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
            if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                return self.answer(400, {"error": "unsupported_grant_type"})
            assertion = form.get("assertion", [""])[0]
            try:
                header = jwt.get_unverified_header(assertion)
                claims = jwt.decode(assertion, public, algorithms=["RS256"], audience=base + "/token", issuer=EMAIL,
                                    options={"require": ["iss", "aud", "iat", "exp", "scope"]})
            except jwt.PyJWTError as e:
                return self.answer(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {type(e).__name__}"})
            now = time.time()
            if header.get("kid") != KID or header.get("typ") != "JWT":
                return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT header."})
            if claims["scope"] != "https://www.googleapis.com/auth/cloud-platform":
                return self.answer(400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope."})
            if not (claims["iat"] <= now + 5 and claims["exp"] - claims["iat"] <= 3600):
                return self.answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT: Token must be a short-lived token."})
            state["grants"] += 1
            return self.answer(200, {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"})
        if self.path == "/v1/token":
            form = urllib.parse.parse_qs(body.decode(), strict_parsing=True)
            expected = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
                        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                        "scope": "https://www.googleapis.com/auth/cloud-platform",
                        "subject_token": open(subject_file).read().strip()}
            for k, v in expected.items():
                if form.get(k) != [v]:
                    return self.answer(400, {"error": "invalid_request", "error_description": f"bad {k}"})
            state["exchanges"] += 1
            return self.answer(200, {"access_token": STS_TOKEN, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                                     "token_type": "Bearer", "expires_in": 3600})
        if self.path == "/v1/projects/-/serviceAccounts/" + EMAIL + ":generateAccessToken":
            if self.headers.get("Authorization") != "Bearer " + STS_TOKEN:
                return self.answer(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
            req = json.loads(body)
            if req.get("scope") != ["https://www.googleapis.com/auth/cloud-platform"]:
                return self.answer(400, {"error": {"code": 400, "message": "bad scope", "status": "INVALID_ARGUMENT"}})
            state["impersonations"] += 1
            expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            return self.answer(200, {"accessToken": access_token, "expireTime": expire})
        self.answer(404, {"error": "not_found"})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
base = f"http://127.0.0.1:{port}"
json.dump({"type": "service_account", "project_id": "project", "private_key_id": KID, "private_key": pem, "client_email": EMAIL,
           "client_id": "1", "token_uri": base + "/token"}, open(key_file, "w"))
json.dump({"type": "external_account",
           "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k8s",
           "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": base + "/v1/token",
           "service_account_impersonation_url": base + "/v1/projects/-/serviceAccounts/" + EMAIL + ":generateAccessToken",
           "credential_source": {"file": subject_file}}, open(external_file, "w"))
threading.Thread(target=server.serve_forever, daemon=True).start()
print(port, flush=True)
sys.stdin.read()
server.shutdown()
