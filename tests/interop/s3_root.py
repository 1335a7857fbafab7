"""Files on an S3 root (moto's S3 server): the SDK uploads, lists, reads, signs and deletes;
signed URLs are presigned by S3 itself."""
import os

import boto3
import requests

base = os.environ["FUSED_TEST_BASE_URL"]
os.environ["FUSED_AUTH_TOKEN"] = os.environ["FUSED_TEST_OWNER_TOKEN"]
os.environ["FUSED_AUTH_TOKEN_TYPE"] = "Fused-Env-Bearer"
endpoint = os.environ["AWS_ENDPOINT"]

import fused  # noqa: E402

fused.options.base_url = base
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")

payload = os.urandom(3 << 20)
fused.api.upload(payload, "fd://data/blob.bin")
# The object is in the bucket, under the root's prefix.
head = s3.head_object(Bucket="fused", Key="team/data/blob.bin")
assert head["ContentLength"] == len(payload), head
assert fused.api.list("fd://data/") == ["fd://data/blob.bin"]
assert fused.api.get("fd://data/blob.bin") == payload
assert fused.api.resolve("fd://data/blob.bin") == "s3://fused/team/data/blob.bin"

url = fused.api.sign_url("fd://data/blob.bin")
assert url.startswith(endpoint) and "X-Amz-Signature=" in url, url
r = requests.get(url)
assert r.status_code == 200 and r.content == payload, r.status_code
# (Checking the signature is S3's job; moto does not, so only its presence is checked.)
assert "X-Amz-Expires=3600" in url, url

try:
    fused.api.get("fd://../other-bucket/x")
    raise AssertionError("traversal must fail")
except Exception as e:  # noqa: BLE001
    assert "400" in str(e) or "not allowed" in str(e), str(e)

assert fused.api.delete("fd://data/") is True
assert "Contents" not in s3.list_objects_v2(Bucket="fused", Prefix="team/")
print("ALL OK")
