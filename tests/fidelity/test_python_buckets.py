"""Fidelity: the real Python `huggingface_hub` bucket API (with `hf_xet`) against hubsim's
Buckets: create, info, tree listing (raw prefixes, recursion), batch add/copy/delete with
xet uploads, downloads byte-identical, private buckets and tokens."""
import json
import random
import urllib.request

import pytest
from conftest import TMP


@pytest.fixture(scope="module")
def api(hubsim):
    from huggingface_hub import HfApi
    yield HfApi(endpoint=hubsim, token="alice-token"), hubsim


def test_create_info_and_conflict(api):
    from huggingface_hub.errors import HfHubHTTPError
    hf, endpoint = api
    url = hf.create_bucket("alice/b1")
    assert url.bucket_id == "alice/b1" and url.url == f"{endpoint}/buckets/alice/b1"
    info = hf.bucket_info("alice/b1")
    assert info.id == "alice/b1" and info.private is False and info.total_files == 0
    with pytest.raises(HfHubHTTPError) as e:
        hf.create_bucket("alice/b1")
    assert e.value.response.status_code == 409
    hf.create_bucket("alice/b1", exist_ok=True)


def updated_at(endpoint, bucket_id):
    """`updatedAt` is what hf-mount polls; Python's BucketInfo does not expose it."""
    req = urllib.request.Request(f"{endpoint}/api/buckets/{bucket_id}", headers={"authorization": "Bearer alice-token"})
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)["updatedAt"]


def test_batch_list_download_roundtrip(api):
    hf, endpoint = api
    hf.create_bucket("alice/data", exist_ok=True)
    rng = random.Random(3)
    blobs = {
        "top.txt": b"hello bucket\n",
        "logs/a.log": b"a" * 1000,
        "logs/deep/b.bin": rng.randbytes(2 << 20),
        "logs_old/c.txt": b"old\n",
        "empty.txt": b"",
    }
    before = updated_at(endpoint, "alice/data")
    hf.batch_bucket_files("alice/data", add=[(data, path) for path, data in blobs.items()])
    info = hf.bucket_info("alice/data")
    assert info.total_files == len(blobs)
    assert info.size == sum(len(d) for d in blobs.values())
    assert updated_at(endpoint, "alice/data") > before, "updatedAt moves on every mutation"

    every = {e.path: e for e in hf.list_bucket_tree("alice/data")}
    assert set(every) == set(blobs), "no flag = recursive, files only"
    assert all(every[p].size == len(d) for p, d in blobs.items())
    top = {e.path: type(e).__name__ for e in hf.list_bucket_tree("alice/data", recursive=False)}
    assert top == {"top.txt": "BucketFile", "empty.txt": "BucketFile", "logs": "BucketFolder",
                   "logs_old": "BucketFolder"}
    raw = {e.path for e in hf.list_bucket_tree("alice/data", prefix="logs")}
    assert raw == {"logs/a.log", "logs/deep/b.bin", "logs_old/c.txt"}, "prefixes are raw, S3-like"

    out = TMP / "out"
    hf.download_bucket_files("alice/data", [(p, str(out / p)) for p in blobs])
    for p, data in blobs.items():
        assert (out / p).read_bytes() == data, p

    mid = updated_at(endpoint, "alice/data")
    hf.batch_bucket_files("alice/data", copy=[("bucket", "alice/data", every["top.txt"].xet_hash, "copied/top.txt")],
                          delete=["logs_old/c.txt"])
    assert updated_at(endpoint, "alice/data") > mid
    now = {e.path: e for e in hf.list_bucket_tree("alice/data")}
    assert set(now) == (set(blobs) - {"logs_old/c.txt"}) | {"copied/top.txt"}
    assert now["copied/top.txt"].size == len(blobs["top.txt"]), "size of a copy comes from CAS"
    hf.download_bucket_files("alice/data", [("copied/top.txt", str(out / "copy"))])
    assert (out / "copy").read_bytes() == blobs["top.txt"]


def test_private_bucket_and_tokens(api):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    hf, endpoint = api
    hf.create_bucket("alice/secret", private=True)
    hf.batch_bucket_files("alice/secret", add=[(b"s3cr3t", "k.txt")])
    assert hf.bucket_info("alice/secret").private is True
    for token in ("bob-token", False):
        with pytest.raises(HfHubHTTPError) as e:
            HfApi(endpoint=endpoint, token=token).bucket_info("alice/secret")
        assert e.value.response.status_code in (401, 404)
    with pytest.raises(HfHubHTTPError) as e:
        HfApi(endpoint=endpoint, token="bob-token").batch_bucket_files("alice/data", delete=["top.txt"])
    assert e.value.response.status_code == 403
    hf.delete_bucket("alice/secret")
    with pytest.raises(HfHubHTTPError):
        hf.bucket_info("alice/secret")
