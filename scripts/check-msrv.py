#!/usr/bin/env python3
"""The declared MSRV (`rust-version` in Cargo.toml) holds for the locked dependency tree.

This machine has one Rust toolchain and cannot fetch another, so the MSRV is checked from two
sides instead of by building with the old compiler: clippy's `incompatible_msrv` lint (part of
`clippy::all`, run by scripts/test.sh) flags standard-library APIs newer than `rust-version`, and
this script fails when a locked dependency (every feature on, dev-dependencies aside) declares a
`rust-version` newer than ours.
"""
import json
import subprocess
import sys


def version(text):
    return tuple(int(part) for part in (text or "0").split("."))


metadata = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
packages = {p["id"]: p for p in metadata["packages"]}
nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
root = metadata["resolve"]["root"]
ours = version(packages[root]["rust_version"])

seen, stack = set(), [root]
while stack:
    node = stack.pop()
    if node in seen:
        continue
    seen.add(node)
    for dep in nodes[node]["deps"]:
        if any(kind["kind"] in (None, "build") for kind in dep["dep_kinds"]):
            stack.append(dep["pkg"])

newer = sorted(
    (version(packages[i].get("rust_version")), packages[i]["name"], packages[i]["version"])
    for i in seen
    if version(packages[i].get("rust_version")) > ours
)
if newer:
    for needed, name, v in newer:
        print(f"{name} {v} needs Rust {'.'.join(map(str, needed))}", file=sys.stderr)
    print(f"rust-version = {'.'.join(map(str, ours))} in Cargo.toml is too low", file=sys.stderr)
    sys.exit(1)
print(f"MSRV {'.'.join(map(str, ours))}: every locked dependency ({len(seen) - 1}) builds with it")
