"""The ``_rust.pyi`` contract: both backends export exactly its names with its signatures."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from types import ModuleType

import pegasus_fast
import pytest
from conftest import BACKENDS, load_backend
from pegasus_fast import _backend, _pure

PYI = Path(pegasus_fast.__file__).with_name("_rust.pyi")


def _parse_pyi() -> tuple[dict[str, ast.FunctionDef], set[str], dict[str, dict[str, ast.FunctionDef]]]:
    tree = ast.parse(PYI.read_text(encoding="utf-8"))
    functions: dict[str, ast.FunctionDef] = {}
    constants: set[str] = set()
    classes: dict[str, dict[str, ast.FunctionDef]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            functions[node.name] = node
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = {m.name: m for m in node.body if isinstance(m, ast.FunctionDef)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            # ``X: int`` declares a constant; ``X: TypeAlias = ...`` would be an alias
            annotation = ast.unparse(node.annotation)
            if node.value is None and "TypeAlias" not in annotation:
                constants.add(node.target.id)
    return functions, constants, classes


FUNCTIONS, CONSTANTS, CLASSES = _parse_pyi()
#: the served data plane's Rust side: its twins are the asyncio front end and client/native.py's
#: PyClientCore (over net/pegasus/), not _pure; the load generator is Rust only
NATIVE_ONLY = {"PegasusFrontCore", "PegasusClientCore", "bench_served"}


def _expected_params(fn: ast.FunctionDef) -> list[tuple[str, inspect._ParameterKind, object]]:
    a = fn.args
    out: list[tuple[str, inspect._ParameterKind, object]] = []
    positional = [*a.posonlyargs, *a.args]
    defaults: list[object] = [inspect.Parameter.empty] * (len(positional) - len(a.defaults))
    defaults += [ast.literal_eval(d) for d in a.defaults]
    for i, arg in enumerate(positional):
        kind = (
            inspect.Parameter.POSITIONAL_ONLY
            if i < len(a.posonlyargs)
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        out.append((arg.arg, kind, defaults[i]))
    if a.vararg:
        out.append((a.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        out.append((arg.arg, inspect.Parameter.KEYWORD_ONLY, value))
    if a.kwarg:
        out.append((a.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return out


def _actual_params(fn: object) -> list[tuple[str, inspect._ParameterKind, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def _public_names(module: ModuleType) -> set[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return set(names)


def test_pyi_declares_the_hot_path() -> None:
    # guards the parser: an empty parse would make every other check vacuous
    assert {"crc32c", "crc64", "encode_block", "scan_log_dir", "hash_file"} <= set(FUNCTIONS)
    assert CONSTANTS == {"BLOCK_HEADER_SIZE"}
    assert {"__new__", "write", "finish", "close"} <= set(CLASSES["CheckpointReceiver"])


def _load(which: str) -> ModuleType:
    return load_backend(which)


@pytest.mark.parametrize("which", BACKENDS)
def test_exports_exactly_the_pyi_names(which: str) -> None:
    module = _load(which)
    native = NATIVE_ONLY if which == "rust" else set()
    declared = set(FUNCTIONS) | CONSTANTS | set(CLASSES)
    assert _public_names(module) == (declared - NATIVE_ONLY) | native
    for name in set(FUNCTIONS) - (NATIVE_ONLY - native):
        assert callable(getattr(module, name))
    for name in set(CLASSES) - (NATIVE_ONLY - native):
        assert isinstance(getattr(module, name), type)
    assert module.BLOCK_HEADER_SIZE == 28


@pytest.mark.parametrize("which", BACKENDS)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_signature_matches_pyi(which: str, name: str) -> None:
    if name in NATIVE_ONLY and which != "rust":
        pytest.skip("the served data plane's twins are not in _pure")
    module = _load(which)
    fn = getattr(module, name)
    assert _actual_params(fn) == _expected_params(FUNCTIONS[name])


@pytest.mark.parametrize("which", BACKENDS)
@pytest.mark.parametrize("cls, method", sorted((c, m) for c, methods in CLASSES.items() for m in methods))
def test_class_signatures_match_pyi(which: str, cls: str, method: str) -> None:
    """A class's constructor (``__new__`` in the .pyi, as stubtest wants for a Rust class; its
    ``cls`` left out, as ``inspect.signature(cls)`` does) and methods; no public method beyond
    the .pyi's."""
    if cls in NATIVE_ONLY and which != "rust":
        pytest.skip("the served data plane's twins are not in _pure")
    klass = getattr(_load(which), cls)
    node = CLASSES[cls][method]
    if any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list):
        assert hasattr(klass, method) and not callable(getattr(klass, method))
        return
    expected = _expected_params(node)
    if method == "__new__":
        assert _actual_params(klass) == expected[1:]
    else:
        actual = _actual_params(getattr(klass, method))
        # a method's ``self`` is positional-only in a Rust class's signature, not in the .pyi's
        if expected and expected[0][0] == "self" and actual and actual[0][0] == "self":
            expected, actual = expected[1:], actual[1:]
        assert actual == expected
    public = {n for n in dir(klass) if not n.startswith("_")}
    assert public == set(CLASSES[cls]) - {"__new__"}


def test_pure_twin_is_the_python_backend() -> None:
    assert _backend.load("python") is _pure
