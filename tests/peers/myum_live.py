"""The demo service provider myUM in a subprocess, wired to a live UM 2FA as scripts/serve does."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.live import ROOT, LiveServer, Subprocess, free_port


@dataclass
class MyumServer(Subprocess):
    instance_dir: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        Subprocess.__init__(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("UM2FA_", "MYUM_"))}
        env.update({"MYUM_BASE_URL": self.url, "MYUM_INSTANCE_DIR": str(self.instance_dir),
                    "MYUM_IDP_METADATA": str(self.instance_dir / "idp-metadata.xml"),
                    "PYTHONUNBUFFERED": "1"})
        return env

    def _run(self, *args: str) -> None:
        result = subprocess.run([sys.executable, "-m", "examples.myum", *args], env=self.env,
                                cwd=ROOT, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise AssertionError(f"myum {' '.join(args)} failed: {result.stderr}")

    def register_with(self, idp: LiveServer) -> None:
        """myUM and the IdP learn about each other from their metadata (operator commands)."""
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        sp_metadata = self.instance_dir / "sp-metadata.xml"
        self._run("write-metadata", str(sp_metadata))
        idp.cli("sp", "add", "--metadata", str(sp_metadata))
        metadata = idp.cli("saml", "metadata").stdout
        (self.instance_dir / "idp-metadata.xml").write_text(metadata)

    def start(self) -> MyumServer:
        self.spawn([sys.executable, "-m", "examples.myum", "serve", "--host", "127.0.0.1",
                    "--port", str(self.port)], env=self.env, cwd=ROOT,
                   log_path=self.instance_dir / "myum.log", ready_url=self.url + "/")
        return self
