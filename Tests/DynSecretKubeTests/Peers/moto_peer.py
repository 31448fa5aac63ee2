#!/usr/bin/env python3
"""moto in server mode on a free loopback port, with its signature and IAM checks on.

The first 7 requests are let through unchecked (INITIAL_NO_AUTH_ACTION_COUNT) and spent here, creating:
  * user `minter` with an access key and an inline policy allowing only ecr:GetAuthorizationToken;
  * user `nobody` with an access key and no policy;
  * role `ecr-role` (web identity) with the same policy.
Every later request is checked. Prints one JSON line (port, keys, role ARN), then serves until stdin closes.
"""
import json
import os
import sys

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "7"
import boto3  # noqa: E402
import botocore.config  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}]})

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
port = server.get_host_and_port()[1]
endpoint = f"http://127.0.0.1:{port}"
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                   aws_secret_access_key="setup", config=botocore.config.Config(retries={"max_attempts": 1}))
out = {"port": port}
iam.create_user(UserName="minter")
iam.put_user_policy(UserName="minter", PolicyName="ecr-token-only", PolicyDocument=POLICY)
k = iam.create_access_key(UserName="minter")["AccessKey"]
out["minter"] = [k["AccessKeyId"], k["SecretAccessKey"]]
iam.create_user(UserName="nobody")
k = iam.create_access_key(UserName="nobody")["AccessKey"]
out["nobody"] = [k["AccessKeyId"], k["SecretAccessKey"]]
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                    "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.test"}}]})
out["roleArn"] = iam.create_role(RoleName="ecr-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
iam.put_role_policy(RoleName="ecr-role", PolicyName="ecr-token-only", PolicyDocument=POLICY)
print(json.dumps(out), flush=True)
sys.stdin.read()
server.stop()
