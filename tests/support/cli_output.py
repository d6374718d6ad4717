"""Parsers for the text output of `oci-fs` (docs/cli.md), shared by the CLI tests."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class LsEntry:
    mode: str  # "drwxr-xr-x"
    size: int
    path: str  # "/disk/disk.img"
    target: str | None = None  # symlink target

    @property
    def is_dir(self) -> bool:
        return self.mode.startswith("d")


_LS_LINE = re.compile(r"^(?P<mode>[-dlcbps][-rwxsStT]{9}) (?P<size>\d+) (?P<path>/.*?)(?: -> (?P<target>.*))?$")


def parse_ls(text: str) -> list[LsEntry]:
    """`oci-fs ls` lines -> entries; raises ValueError on a line that does not fit the contract."""
    out = []
    for line in text.splitlines():
        if not line:
            continue
        m = _LS_LINE.match(line)
        if not m:
            raise ValueError(f"not an ls line: {line!r}")
        out.append(LsEntry(m["mode"], int(m["size"]), m["path"], m["target"]))
    return out


def ls_paths(text: str) -> list[str]:
    return [e.path for e in parse_ls(text)]


def parse_inspect(text: str) -> dict:
    """`oci-fs inspect` text -> {"Reference": ..., "Digest": ..., ..., "Layers": [(digest, size, compression)]}."""
    fields: dict = {}
    layers = None
    for line in text.splitlines():
        if layers is not None and line.startswith("  "):
            digest, size, compression = line.split()
            layers.append((digest, int(size), compression))
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key == "Layers":
            layers = []
            fields["Layers"] = layers
        else:
            fields[key] = value.strip()
    return fields
