"""Shared by the fidelity tests: where hubsim is, and a scratch HF_HOME so the Python client
never touches the user's cache or sends telemetry."""
import os
import pathlib
import subprocess
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HUBSIM = os.environ.get("HUBSIM_BIN", str(ROOT / "target" / "release" / "hubsim"))
TMP = pathlib.Path(tempfile.mkdtemp(prefix="hfm-fidelity-"))
os.environ["HF_HOME"] = str(TMP / "hf-home")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


@pytest.fixture(scope="module")
def hubsim():
    """A fresh hubsim with users alice and bob; yields its endpoint."""
    proc = subprocess.Popen([HUBSIM, "serve", "--user", "alice:alice-token", "--user", "bob:bob-token"],
                            stdout=subprocess.PIPE, text=True)
    endpoint = proc.stdout.readline().strip().removeprefix("endpoint=")
    assert endpoint.startswith("http://"), endpoint
    yield endpoint
    proc.terminate()
    proc.wait(timeout=10)
