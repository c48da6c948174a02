"""Fidelity: the real Python `huggingface_hub` (with `hf_xet`) against hubsim. Downloads must be
byte-identical to the seeded files, through both the regular and the xet (CAS) paths."""
import hashlib
import pathlib
import random
import subprocess

import pytest
from conftest import HUBSIM, TMP


@pytest.fixture(scope="module")
def hub(hubsim):
    endpoint = hubsim
    src = TMP / "src"
    rng = random.Random(7)
    files = {
        "README.md": b"# fidelity\n",
        "config.json": b'{"a": 1}\n',
        "sub/dir/small.txt": b"small\n" * 10,
        "sub/model.bin": rng.randbytes(3 << 20),
        "big/weights.safetensors": rng.randbytes(5 << 20),
        "names/with space #1.txt": b"odd name\n",
    }
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    out = subprocess.run(
        [HUBSIM, "seed", "--endpoint", endpoint, "--token", "alice-token", "repo", "alice/fidelity", "--from", str(src)],
        check=True, capture_output=True, text=True,
    )
    sha = out.stdout.strip().splitlines()[-1]
    yield endpoint, files, sha


def test_list_repo_tree(hub):
    from huggingface_hub import HfApi
    endpoint, files, _ = hub
    api = HfApi(endpoint=endpoint, token="alice-token")
    entries = list(api.list_repo_tree("alice/fidelity", recursive=True))
    file_paths = {e.path for e in entries if e.__class__.__name__ == "RepoFile"}
    dirs = {e.path for e in entries if e.__class__.__name__ == "RepoFolder"}
    assert file_paths == set(files)
    assert {"sub", "sub/dir", "big", "names"} == dirs
    xet = {e.path: e for e in entries if getattr(e, "xet_info", None) is not None or getattr(e, "lfs", None)}
    assert {"sub/model.bin", "big/weights.safetensors"} <= set(xet)


@pytest.mark.parametrize("path", ["README.md", "sub/dir/small.txt", "names/with space #1.txt", "sub/model.bin", "big/weights.safetensors"])
def test_hf_hub_download(hub, path):
    from huggingface_hub import hf_hub_download
    endpoint, files, _ = hub
    local = hf_hub_download("alice/fidelity", path, endpoint=endpoint, token="alice-token", cache_dir=str(TMP / "dl"))
    assert pathlib.Path(local).read_bytes() == files[path]


def test_snapshot_download(hub):
    from huggingface_hub import snapshot_download
    endpoint, files, sha = hub
    local = pathlib.Path(snapshot_download("alice/fidelity", endpoint=endpoint, token="alice-token", cache_dir=str(TMP / "snap")))
    assert local.name == sha
    for rel, data in files.items():
        got = (local / rel).read_bytes()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest(), rel
