"""Every public name is importable and __all__ is tidy (as trio's _tests/test_exports.py)."""

from __future__ import annotations

import importlib
import re
import types

import pytest

import ocpp_trio
import ocpp_trio.outbox
import ocpp_trio.testing

PUBLIC_MODULES = [ocpp_trio, ocpp_trio.outbox, ocpp_trio.testing]


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """ruff RUF022's "isort-style" order: SCREAMING_CASE, then CamelCase, then the rest.

    Within a group the order is natural (digit runs compare as numbers).
    """
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_sorted_and_unique(module: types.ModuleType) -> None:
    names = list(module.__all__)
    assert all(isinstance(name, str) for name in names)
    assert names == sorted(names, key=_isort_key)
    assert len(names) == len(set(names))


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_every_name_in_all_is_importable(module: types.ModuleType) -> None:
    fresh = importlib.import_module(module.__name__)
    namespace: dict[str, object] = {}
    exec(f"from {module.__name__} import *", namespace)
    for name in module.__all__:
        assert hasattr(fresh, name), name
        assert namespace[name] is getattr(fresh, name)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_no_private_module_leaks(module: types.ModuleType) -> None:
    for name in module.__all__:
        assert not name.startswith("_") or name == "__version__", name


def test_exception_classes_share_one_root() -> None:
    for name in ocpp_trio.__all__:
        obj = getattr(ocpp_trio, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, ocpp_trio.OCPPError), name


def test_version() -> None:
    version = ocpp_trio.__version__
    assert isinstance(version, str)
    # PEP 440, the common forms
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", version)
    assert ocpp_trio.package_ident() == f"ocpp-trio/{version}"


def test_installed_metadata_matches() -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("ocpp-trio")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        pytest.skip("ocpp-trio is not installed in this environment")
    assert installed == ocpp_trio.__version__
