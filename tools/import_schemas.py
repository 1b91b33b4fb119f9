"""Import the OCA JSON schemas from ``ocpp`` wheels on PyPI into ``schemas/``.

The mobilityhouse ``ocpp`` distribution redistributes the Open Charge
Alliance's official JSON schemas for OCPP 1.6 (with the Security Extension),
2.0.1 and 2.1, and has edited some of them over the years.  This tool takes
each set from the release that carries it as the OCA published it (or as close
to that as any release comes), extracts the files byte for byte, reverts the
one redistributor's edit still left (the removed ``id`` URNs of the 1.6 core
files, see :func:`restore_16_ids`), and writes them to ``schemas/<folder>/``.
``schemas/README.md`` tells the provenance of every set, and every edit made to
it by whoever redistributed it; keep the two in step.

Usage::

    python tools/import_schemas.py                      # (re)write schemas/
    python tools/import_schemas.py --check              # fail when schemas/ differs
    python tools/import_schemas.py --check --installed  # offline: the installed ocpp
                                                        # wheel's sets byte for byte,
                                                        # the others by their digest

``--check`` compares the committed files with the wheels', so that any local
edit of a schema file is caught: adaptations belong in the loader, not in the
files.  Each set's SHA-256 (over its file names and bytes, in name order) is
pinned in :data:`SOURCES`; the download check verifies the pins too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"

#: The OCPP 1.6 Security Extension messages (OCA "Improved security for OCPP
#: 1.6-J", schemas ``urn:OCPP:Cp:1.6:2020:3:...``), request and response each.
SECURITY_EXTENSION_16 = frozenset(
    {
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "LogStatusNotification",
        "SecurityEventNotification",
        "SignCertificate",
        "SignedFirmwareStatusNotification",
        "SignedUpdateFirmware",
    }
)


def _security_16(name: str) -> bool:
    return name.removesuffix(".json").removesuffix("Response") in SECURITY_EXTENSION_16


def _core_16(name: str) -> bool:
    return not _security_16(name)


#: ``"id": "urn:OCPP:1.6:2019:12:<title>"``: the draft-04 ``id`` of each file of
#: the OCA's 2019-12 OCPP 1.6 set, the second line of the file, which the
#: ``ocpp`` package removed when it imported the set (its commit c280a64,
#: released in 0.5.1).
_ID_16 = "urn:OCPP:1.6:2019:12:"
_SCHEMA_LINE = re.compile(
    rb'^([ \t]*)"\$schema": "http://json-schema.org/draft-04/schema#",(\r?\n)', re.MULTILINE
)


def restore_16_ids(name: str, content: bytes) -> bytes:
    """Put back the ``id`` line of a 1.6 core file, after its ``$schema`` line.

    Written in the file's own indentation and line ending; the value is
    ``urn:OCPP:1.6:2019:12:`` followed by the file's ``title``.
    """
    title = json.loads(content.decode("utf-8-sig"))["title"]
    match = _SCHEMA_LINE.search(content)
    if match is None or b'"id": "urn:' in content:
        raise SystemExit(f"{name}: no draft-04 $schema line to put the id after, or one is there")
    indent, eol = match.group(1), match.group(2)
    line = indent + f'"id": "{_ID_16}{title}",'.encode() + eol
    return content[: match.end()] + line + content[match.end() :]


@dataclass(frozen=True)
class Source:
    """One set of schema files: where it comes from and where it goes.

    Attributes:
        requirement: the wheel, ``ocpp==<version>``.
        prefix: the folder inside the wheel.
        target: the folder under ``schemas/``.
        count: how many files the set has.
        digest: SHA-256 of the set as written (see the module docstring).
        keep: which file names of the folder belong to the set.
        revert: the edit of the redistributor undone, applied per file.
    """

    requirement: str
    prefix: str
    target: str
    count: int
    digest: str
    keep: Callable[[str], bool] = lambda name: True
    revert: Callable[[str, bytes], bytes] | None = None

    @property
    def version(self) -> str:
        return self.requirement.split("==")[1]


SOURCES: tuple[Source, ...] = (
    # OCPP 1.6 core, the OCA's 2019-12 set (with the errata sheet v4.0).  ocpp
    # 0.5.1 is the only release that carries it without the later edits
    # (Hertz in MeterValues' unit, 0.6.2; minItems on meterValue and
    # sampledValue, 0.9.0).  Kept from its edits: Celsius in StopTransaction's
    # unit enum (errata sheet v4.0, see schemas/README.md).
    Source(
        "ocpp==0.5.1",
        "ocpp/v16/schemas/",
        "ocpp1.6",
        56,
        "749866d5a5aad51eb2f590738717fda429e4e924da1475ec0bbdb87024ea1901",
        keep=_core_16,
        revert=restore_16_ids,
    ),
    # The OCPP 1.6 Security Extension (first released in ocpp 0.9.0; unchanged since).
    Source(
        "ocpp==2.1.0",
        "ocpp/v16/schemas/",
        "ocpp1.6",
        22,
        "0f8b42fc9af60bfada22f6db159dfcb220d14073f93e015151821602f6edca2a",
        keep=_security_16,
    ),
    # OCPP 2.0.1 FINAL.  ocpp 0.17.0 is the last release before its edit of
    # Get15118EVCertificateResponse (exiResponse maxLength 5600 -> 7500, 0.18.0).
    Source(
        "ocpp==0.17.0",
        "ocpp/v201/schemas/",
        "ocpp2.0.1",
        128,
        "c50928ae932ee5de9b6f24a1a8ad140d06fed2c01b855e860d900b9e6a2115f0",
    ),
    # OCPP 2.1 Edition 1.
    Source(
        "ocpp==2.1.0",
        "ocpp/v21/schemas/",
        "ocpp2.1",
        181,
        "0df370a20245167515eeac59705db8e8f60d05fd00180617b9b3b9ad52f0c8f7",
    ),
    # The earlier OCPP 1.6 files, before the OCA's 2019-12 set: what ocpp
    # 0.1.1, 0.4.4 and 0.5.0 carry, unedited.  The variant "pre-errata".
    Source(
        "ocpp==0.5.0",
        "ocpp/v16/schemas/",
        "ocpp1.6-pre-errata",
        56,
        "d898059358ae9ec48a7fcfe2f0338a2c4811016eaf7535a4ef1587724d1831b0",
        keep=_core_16,
    ),
    # ... with the same Security Extension files as the default set.
    Source(
        "ocpp==2.1.0",
        "ocpp/v16/schemas/",
        "ocpp1.6-pre-errata",
        22,
        "0f8b42fc9af60bfada22f6db159dfcb220d14073f93e015151821602f6edca2a",
        keep=_security_16,
    ),
)

#: The folders this tool writes.
TARGETS = tuple(dict.fromkeys(source.target for source in SOURCES))


def digest(files: dict[str, bytes]) -> str:
    """SHA-256 over the names and bytes of ``files``, in name order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name] + b"\0")
    return h.hexdigest()


def _download(requirement: str, dest: Path) -> Path:
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
            requirement,
        ],
        check=True,
    )
    version = requirement.split("==")[1]
    wheels = sorted(dest.glob(f"ocpp-{version}-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {requirement} wheel in {dest}, found {len(wheels)}")
    return wheels[0]


def _select(source: Source, entries: Iterable[tuple[str, Callable[[], bytes]]]) -> dict[str, bytes]:
    """The files of ``source`` among ``(path in the wheel, read)`` pairs, reverted."""
    files: dict[str, bytes] = {}
    for path, read in entries:
        rest = path[len(source.prefix) :]
        wanted = path.startswith(source.prefix) and rest.endswith(".json") and "/" not in rest
        if wanted and source.keep(rest):
            content = read()
            if source.revert is not None:
                content = source.revert(rest, content)
            files[rest] = content
    if len(files) != source.count:
        raise SystemExit(
            f"{source.requirement} {source.prefix} -> {source.target}: expected "
            f"{source.count} files, found {len(files)}"
        )
    return files


def read_wheel(source: Source, wheel: Path) -> dict[str, bytes]:
    """The files of ``source`` from ``wheel``."""
    with zipfile.ZipFile(wheel) as zf:
        return _select(source, [(n, lambda n=n: zf.read(n)) for n in zf.namelist()])


def read_installed(source: Source) -> dict[str, bytes] | None:
    """The files of ``source`` from the installed ``ocpp``; None when another version is installed."""
    from importlib import metadata

    dist = metadata.distribution("ocpp")
    if dist.version != source.version:
        return None
    entries = [
        (str(e).replace("\\", "/"), lambda e=e: Path(str(e.locate())).read_bytes())
        for e in dist.files or ()
    ]
    return _select(source, entries)


def read_committed(source: Source) -> dict[str, bytes]:
    """The committed files of ``schemas/<target>/`` that belong to ``source``."""
    return {
        path.name: path.read_bytes()
        for path in sorted((SCHEMAS / source.target).glob("*.json"))
        if source.keep(path.name)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument(
        "--installed",
        action="store_true",
        help="offline: take the installed ocpp's sets (its wheel's bytes) and check the "
        "other sets by their pinned digest",
    )
    parser.add_argument(
        "--print-digests", action="store_true", help="print each set's digest as committed"
    )
    args = parser.parse_args(argv)

    if args.print_digests:
        for source in SOURCES:
            print(
                f"{source.requirement} {source.prefix} -> {source.target}: "
                f"{digest(read_committed(source))}"
            )
        return 0

    wanted: list[tuple[Source, dict[str, bytes] | None]] = []
    if args.installed:
        wanted = [(source, read_installed(source)) for source in SOURCES]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            wheels: dict[str, Path] = {}
            for source in SOURCES:
                if source.requirement not in wheels:
                    wheels[source.requirement] = _download(source.requirement, Path(tmp))
                wanted.append((source, read_wheel(source, wheels[source.requirement])))

    if args.check:
        problems: list[str] = []
        listed: dict[str, set[str]] = {target: set() for target in TARGETS}
        for source, files in wanted:
            have = read_committed(source)
            listed[source.target] |= have.keys()
            where = f"{source.target} ({source.requirement})"
            if files is not None:
                problems += [f"missing: {where}/{n}" for n in sorted(files.keys() - have.keys())]
                problems += [f"extra: {where}/{n}" for n in sorted(have.keys() - files.keys())]
                problems += [
                    f"differs: {where}/{n}"
                    for n in sorted(files.keys() & have.keys())
                    if files[n] != have[n]
                ]
                if not problems and digest(files) != source.digest:
                    problems.append(f"{where}: the pinned digest is stale: {digest(files)}")
            elif digest(have) != source.digest:
                problems.append(f"{where}: the files differ from the pinned digest")
        for target in TARGETS:
            for path in sorted((SCHEMAS / target).glob("*.json")):
                if path.name not in listed[target]:
                    problems.append(f"extra: {target}/{path.name}")
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            print("schemas/ differs from its sources: run tools/import_schemas.py", file=sys.stderr)
            return 1
        count = sum(len(read_committed(source)) for source in SOURCES)
        how = "byte for byte or by digest" if args.installed else "byte for byte"
        print(f"schemas/ matches its {len(SOURCES)} sources ({how}): {count} files")
        return 0

    for target in TARGETS:
        folder = SCHEMAS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):
            old.unlink()
    for source, files in wanted:
        if files is None:
            raise SystemExit(f"{source.requirement} is not installed: run without --installed")
        for name, content in files.items():
            (SCHEMAS / source.target / name).write_bytes(content)
    print(f"wrote {sum(len(f or {}) for _, f in wanted)} schema files from {len(SOURCES)} sources")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
