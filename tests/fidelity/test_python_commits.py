"""Fidelity: repos changed the way users change them, through the real Python `huggingface_hub`
(with `hf_xet`) and its `hf` CLI against hubsim: create_repo, upload_file (regular and Xet),
upload_folder, create_commit with add/delete/copy, delete_file, create_branch, create_tag,
`hf upload` and `hf download`. Every change is read back byte for byte."""
import os
import pathlib
import random
import shutil
import subprocess

import pytest
from conftest import TMP


@pytest.fixture(scope="module")
def api(hubsim):
    from huggingface_hub import HfApi
    api = HfApi(endpoint=hubsim, token="alice-token")
    api.create_repo("alice/commits")
    return api


def read(api, path, revision=None):
    from huggingface_hub import hf_hub_download
    local = hf_hub_download("alice/commits", path, revision=revision, endpoint=api.endpoint, token="alice-token",
                            cache_dir=TMP / "dl-cache")
    return pathlib.Path(local).read_bytes()


def test_upload_file_regular_and_xet(api):
    small = b"hello commits\n"
    big = random.Random(1).randbytes(12 << 20)
    info = api.upload_file(path_or_fileobj=small, path_in_repo="README.md", repo_id="alice/commits")
    assert len(info.oid) == 40
    api.upload_file(path_or_fileobj=big, path_in_repo="weights/model.bin", repo_id="alice/commits")
    assert read(api, "README.md") == small
    assert read(api, "weights/model.bin") == big
    files = {f.path: f for f in api.list_repo_tree("alice/commits", recursive=True) if hasattr(f, "size")}
    assert files["weights/model.bin"].lfs is not None and files["weights/model.bin"].xet_hash
    assert files["README.md"].lfs is None


def test_upload_folder_and_commit_operations(api):
    from huggingface_hub import CommitOperationAdd, CommitOperationCopy, CommitOperationDelete
    src = TMP / "folder"
    (src / "data").mkdir(parents=True, exist_ok=True)
    (src / "data" / "a.txt").write_text("a\n")
    (src / "data" / "b.bin").write_bytes(random.Random(2).randbytes(11 << 20))
    api.upload_folder(folder_path=src, repo_id="alice/commits", commit_message="a folder")
    assert read(api, "data/a.txt") == b"a\n"
    head = api.repo_info("alice/commits").sha
    api.create_commit(
        "alice/commits",
        operations=[
            CommitOperationAdd("data/c.txt", b"c\n"),
            CommitOperationCopy("data/b.bin", "copies/b.bin"),
            CommitOperationDelete("data/a.txt"),
        ],
        commit_message="add, copy, delete",
        parent_commit=head,
    )
    paths = {f.path for f in api.list_repo_tree("alice/commits", recursive=True)}
    assert "data/a.txt" not in paths and {"data/c.txt", "copies/b.bin", "data/b.bin"} <= paths
    assert read(api, "copies/b.bin") == (src / "data" / "b.bin").read_bytes()
    # A stale parent commit is refused.
    from huggingface_hub.utils import HfHubHTTPError
    with pytest.raises(HfHubHTTPError):
        api.create_commit("alice/commits", operations=[CommitOperationAdd("x.txt", b"x")], commit_message="stale",
                          parent_commit=head)


def test_delete_file_and_folder(api):
    api.delete_file("data/c.txt", repo_id="alice/commits")
    api.delete_folder("copies", repo_id="alice/commits")
    paths = {f.path for f in api.list_repo_tree("alice/commits", recursive=True)}
    assert "data/c.txt" not in paths and not any(p.startswith("copies/") for p in paths)


def test_branches_and_tags(api):
    api.create_branch("alice/commits", branch="dev")
    api.upload_file(path_or_fileobj=b"dev only\n", path_in_repo="dev.txt", repo_id="alice/commits", revision="dev")
    api.create_tag("alice/commits", tag="v1.0", revision="dev")
    assert read(api, "dev.txt", revision="dev") == b"dev only\n"
    assert read(api, "dev.txt", revision="v1.0") == b"dev only\n"
    main = {f.path for f in api.list_repo_tree("alice/commits", recursive=True)}
    assert "dev.txt" not in main
    refs = api.list_repo_refs("alice/commits")
    assert {b.name for b in refs.branches} == {"main", "dev"} and {t.name for t in refs.tags} == {"v1.0"}
    from huggingface_hub.utils import HfHubHTTPError
    with pytest.raises(HfHubHTTPError):
        api.create_branch("alice/commits", branch="dev")
    api.delete_tag("alice/commits", tag="v1.0")
    api.delete_branch("alice/commits", branch="dev")
    assert {b.name for b in api.list_repo_refs("alice/commits").branches} == {"main"}


def test_other_users_cannot_write(hubsim):
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HfHubHTTPError
    bob = HfApi(endpoint=hubsim, token="bob-token")
    with pytest.raises(HfHubHTTPError):
        bob.upload_file(path_or_fileobj=b"nope", path_in_repo="bob.txt", repo_id="alice/commits")


def test_hf_cli_upload_and_download(api):
    hf = shutil.which("hf")
    if hf is None:
        pytest.skip("the hf CLI is not installed")
    env = dict(os.environ, HF_ENDPOINT=api.endpoint, HF_TOKEN="alice-token")
    src = TMP / "cli-src"
    src.mkdir(exist_ok=True)
    (src / "cli.txt").write_text("from the cli\n")
    (src / "cli.bin").write_bytes(random.Random(3).randbytes(11 << 20))
    subprocess.run([hf, "upload", "alice/commits", str(src), "cli", "--commit-message", "cli upload"], env=env,
                   check=True, capture_output=True)
    out = TMP / "cli-out"
    subprocess.run([hf, "download", "alice/commits", "--include", "cli/*", "--local-dir", str(out)], env=env,
                   check=True, capture_output=True)
    assert (out / "cli" / "cli.txt").read_text() == "from the cli\n"
    assert (out / "cli" / "cli.bin").read_bytes() == (src / "cli.bin").read_bytes()
