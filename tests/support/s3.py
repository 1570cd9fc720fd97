"""moto in server mode: a real S3 endpoint over HTTP on 127.0.0.1, for tests.

It runs on a thread of the test process (werkzeug), so server subprocesses reach it over TCP
as they would MinIO. moto checks no signatures; tests assert on what the presigned URLs sign.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from moto.server import ThreadedMotoServer

from tests.support.polling import wait_until
from tests.support.services import reachable

ACCESS_KEY_ID = "hubbub-test-key"
SECRET_ACCESS_KEY = "hubbub-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    host: str
    port: int

    def env(self, bucket: str) -> dict[str, str]:
        """The settings a Hubbub process needs to use this endpoint."""
        return {"S3_ENDPOINT_URL": self.url, "S3_BUCKET": bucket,
                "S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "S3_REGION": REGION}


@contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    """Start moto on a free 127.0.0.1 port; stop it (and wait for the port to close) after."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(url=f"http://{host}:{port}", host=host, port=port)
    finally:
        server.stop()
        wait_until(lambda: not reachable(host, port, timeout=0.2), 10, "moto to stop")
