"""Images into the cluster's containerd: no registry, so they are copied from the engine that
built them (`podman save` as a docker archive, `ctr images import`) and pods use them with
imagePullPolicy Never. The pause image is made here from the pause binary built from
Kubernetes' own source.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from testbed.cluster.configs import PAUSE_IMAGE
from testbed.containers.engine import engine

if TYPE_CHECKING:
    from testbed.cluster.cluster import Cluster


class ImageError(RuntimeError):
    pass


def pause_archive(binary: Path, directory: Path) -> Path:
    """A one-layer docker archive holding /pause (no engine needed)."""
    import hashlib
    import io

    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "pause.tar"
    if out.exists() and out.stat().st_mtime >= binary.stat().st_mtime:
        return out
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tar.gettarinfo(str(binary), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        with binary.open("rb") as f:
            tar.addfile(info, f)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "ims-testbed: pause from Kubernetes' build/pause"}],
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": [PAUSE_IMAGE], "Layers": ["layer.tar"]}]
    ).encode()
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as tar:
        for name, data in (
            ("layer.tar", layer_bytes),
            (config_name, config),
            ("manifest.json", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return out


def import_archive(cluster: Cluster, archive: Path) -> None:
    result = cluster._ctr("images", "import", "-", stdin_file=archive)
    if result.returncode != 0:
        raise ImageError(f"ctr images import {archive.name}: {result.stderr.strip()}")


def load(cluster: Cluster, images: list[str]) -> dict[str, float]:
    """Copy the named images (as the engine names them, e.g. localhost/ims-testbed/x:1) into
    the cluster, skipping those already there with the same image ID; returns the images
    copied, each with the seconds the whole copy took."""
    eng = engine()
    record_file = cluster.layout.root / "images" / "loaded.json"
    record_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        loaded: dict[str, str] = json.loads(record_file.read_text())
    except FileNotFoundError:
        loaded = {}
    present = set(cluster._ctr("images", "ls", "-q").stdout.split())
    ids = {
        image: eng.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        for image in images
    }
    todo = [image for image in images if loaded.get(image) != ids[image] or image not in present]
    if not todo:
        return {}
    start = time.monotonic()
    # one archive for all: the layers the images share (the Debian bases) are copied once
    with tempfile.TemporaryDirectory(dir=cluster.layout.root) as tmp:
        archive = Path(tmp) / "images.tar"
        eng.run(
            "save",
            "--multi-image-archive",
            "--format",
            "docker-archive",
            "-o",
            str(archive),
            *todo,
            timeout=1200,
        )
        import_archive(cluster, archive)
    for image in todo:
        loaded[image] = ids[image]
    record_file.write_text(json.dumps(loaded, indent=2))
    seconds = time.monotonic() - start
    return {image: seconds for image in todo}


def built_images() -> list[str]:
    """Every image docker/build.sh makes, as the engine names them."""
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [str(root / "docker" / "build.sh"), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [name if name.startswith("localhost/") else f"localhost/{name}" for name in out]
