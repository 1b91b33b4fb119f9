"""Import the OCA JSON schemas from the ``ocpp`` wheel on PyPI into ``schemas/``.

The mobilityhouse ``ocpp`` distribution redistributes the Open Charge
Alliance's official JSON schemas for OCPP 1.6 (with the Security Extension),
2.0.1 and 2.1.  This tool downloads that wheel (a pinned version), extracts the
schema files byte for byte and writes them to ``schemas/<protocol>/``.

Usage::

    python tools/import_schemas.py            # (re)write schemas/
    python tools/import_schemas.py --check    # fail when schemas/ differs

``--check`` compares the committed files with the wheel's, so that any local
edit of a schema file is caught: adaptations belong in the loader, not in the
files.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "ocpp==2.1.0"
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"

#: folder in the wheel -> folder under schemas/, with the expected file count
SOURCES: dict[str, tuple[str, int]] = {
    "ocpp/v16/schemas/": ("ocpp1.6", 78),
    "ocpp/v201/schemas/": ("ocpp2.0.1", 128),
    "ocpp/v21/schemas/": ("ocpp2.1", 181),
}


def _download_wheel(dest: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(dest),
            WHEEL_REQUIREMENT,
        ],
        check=True,
    )
    wheels = sorted(dest.glob("ocpp-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one ocpp wheel in {dest}, found {len(wheels)}")
    return wheels[0]


def read_wheel_schemas(wheel: Path) -> dict[str, bytes]:
    """Return {"<protocol>/<file>.json": content} for every schema in the wheel."""
    files: dict[str, bytes] = {}
    counts = dict.fromkeys(SOURCES, 0)
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            for prefix, (folder, _) in SOURCES.items():
                rest = name[len(prefix) :]
                if name.startswith(prefix) and rest.endswith(".json") and "/" not in rest:
                    files[f"{folder}/{rest}"] = zf.read(name)
                    counts[prefix] += 1
    for prefix, (folder, expected) in SOURCES.items():
        if counts[prefix] != expected:
            raise SystemExit(
                f"{folder}: expected {expected} schema files, the wheel has {counts[prefix]}"
            )
    return files


def read_installed_schemas() -> dict[str, bytes]:
    """Like :func:`read_wheel_schemas`, from the installed ``ocpp`` distribution's RECORD."""
    from importlib import metadata

    dist = metadata.distribution("ocpp")
    wanted_version = WHEEL_REQUIREMENT.split("==")[1]
    if dist.version != wanted_version:
        raise SystemExit(f"installed ocpp is {dist.version}, expected {wanted_version}")
    files: dict[str, bytes] = {}
    for entry in dist.files or ():
        name = str(entry).replace("\\", "/")
        for prefix, (folder, _) in SOURCES.items():
            rest = name[len(prefix) :]
            if name.startswith(prefix) and rest.endswith(".json") and "/" not in rest:
                files[f"{folder}/{rest}"] = Path(str(entry.locate())).read_bytes()
    for folder, expected in SOURCES.values():
        count = sum(1 for n in files if n.startswith(folder + "/"))
        if count != expected:
            raise SystemExit(
                f"{folder}: expected {expected} schema files, installed ocpp has {count}"
            )
    return files


def read_committed() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for _, (folder, _) in SOURCES.items():
        for path in sorted((SCHEMAS / folder).glob("*.json")):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--wheel", type=Path, help="use this ocpp wheel instead of downloading it")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="read the files of the installed ocpp package (same bytes as its wheel) instead",
    )
    args = parser.parse_args(argv)

    if args.installed:
        wanted = read_installed_schemas()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            wheel = args.wheel or _download_wheel(Path(tmp))
            wanted = read_wheel_schemas(wheel)

    if args.check:
        have = read_committed()
        problems = sorted(
            [f"missing: {n}" for n in wanted.keys() - have.keys()]
            + [f"extra: {n}" for n in have.keys() - wanted.keys()]
            + [f"differs: {n}" for n in wanted.keys() & have.keys() if wanted[n] != have[n]]
        )
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("schemas/ differs from the wheel: run tools/import_schemas.py", file=sys.stderr)
            return 1
        digest = hashlib.sha256(b"".join(have[n] for n in sorted(have))).hexdigest()
        print(f"schemas/ matches {WHEEL_REQUIREMENT}: {len(have)} files, sha256 {digest[:16]}")
        return 0

    for _, (folder, _) in SOURCES.items():
        target = SCHEMAS / folder
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.json"):
            old.unlink()
    for name, content in wanted.items():
        (SCHEMAS / name).write_bytes(content)
    print(f"wrote {len(wanted)} schema files from {WHEEL_REQUIREMENT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
