"""The output root on any ``pyarrow.fs`` filesystem, with atomic writes.

Everything a job writes lives under its root, addressed by a path relative to that root, so a
root can be moved or mirrored (local disk, NFS, ``s3://``) without rewriting any record.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs


def resolve_filesystem(uri_or_path: str) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem and the path inside it for a local path or a URI."""
    if "://" in uri_or_path:
        return pafs.FileSystem.from_uri(uri_or_path)
    return pafs.LocalFileSystem(), os.path.abspath(uri_or_path)


class Storage:
    """An output root. All paths given to its methods are relative to the root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fs, self.base = resolve_filesystem(root)
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)

    def full(self, rel: str) -> str:
        """Path inside the filesystem for ``rel``; refuses paths that leave the root."""
        parts = PurePosixPath(rel).parts
        if PurePosixPath(rel).is_absolute() or ".." in parts:
            raise ValueError(f"refusing a path outside the output root: {rel!r}")
        return f"{self.base.rstrip('/')}/{rel}"

    def uri(self, rel: str) -> str:
        """A URI a user can paste elsewhere (absolute local path or ``scheme://``)."""
        if self.is_local:
            return self.full(rel)
        scheme = self.root.split("://", 1)[0]
        return f"{scheme}://{self.full(rel)}"

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write atomically: a temp file beside the target, then a rename. Returns ``rel``."""
        with self.atomic_stream(rel) as out:
            out.write(data)
        return rel

    @contextlib.contextmanager
    def atomic_stream(self, rel: str) -> Iterator[pa.NativeFile]:
        """A stream that becomes ``rel`` only if the block finishes: written to a temp name, then renamed.

        For outputs too large to hold in memory (shards). A crash leaves at most a ``.tmp-`` file,
        which every listing here skips, never a file that looks complete.
        """
        target = self.full(rel)
        parent = target.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{target.rsplit('/', 1)[1]}"
        try:
            with self.fs.open_output_stream(tmp) as out:
                yield out
            self.fs.move(tmp, target)
        except BaseException:
            self._remove_quietly(tmp)
            raise

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open_input_stream(self.full(rel)) as src:
            return src.read()

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound

    def list_files(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Files directly under ``rel_dir`` (relative to the root), sorted; temp files are skipped."""
        info = self.fs.get_file_info(pafs.FileSelector(self.full(rel_dir), allow_not_found=True))
        names = [i.base_name for i in info if i.type == pafs.FileType.File]
        return sorted(
            f"{rel_dir}/{n}" for n in names if n.endswith(suffix) and not n.startswith(".tmp-")
        )

    def list_dirs(self, rel_dir: str) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(self.full(rel_dir), allow_not_found=True))
        return sorted(i.base_name for i in info if i.type == pafs.FileType.Directory)

    def delete(self, rel: str) -> None:
        self.fs.delete_file(self.full(rel))

    def delete_dir(self, rel: str) -> None:
        """Remove ``rel`` and everything under it; a folder that is not there is fine."""
        if self.fs.get_file_info(self.full(rel)).type != pafs.FileType.NotFound:
            self.fs.delete_dir(self.full(rel))

    def _remove_quietly(self, path: str) -> None:
        with contextlib.suppress(OSError):
            self.fs.delete_file(path)


def artifact_path(stage: str, fingerprint: str, name: str) -> str:
    """Where a stage's output for one fingerprint lives: ``artifacts/<stage>/<fp>/<name>``."""
    return f"artifacts/{stage}/{fingerprint}/{name}"
