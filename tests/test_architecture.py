"""The layers of fedxnor and the imports each may make (docs/architecture.md), enforced.

Every import in every module counts, at the top of the file or inside a function: a function-local import
does not make an upward dependency legal. And the stages that never need torch import without it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"fedxnor": "fedxnor", "contract": "fedxnor.contract", "train": "fedxnor.train", "export": "fedxnor.export",
           "hw": "fedxnor.hw", "sim": "fedxnor.sim", "boards": "fedxnor.boards"}
COMMON = {"fedxnor.errors", "fedxnor.atomic", "fedxnor.progress", "fedxnor.tools", "fedxnor.datasets"}

# layer -> the layers it may import (itself included)
ALLOWED = {
    "common": {"common"},
    "contract": {"common", "contract"},
    "export": {"common", "contract", "export"},
    "hw": {"common", "contract", "export", "hw"},
    "sim": {"common", "contract", "export", "hw", "sim"},
    "boards": {"common", "contract", "export", "hw", "sim", "boards"},
    "train": {"common", "contract", "export", "train"},
    "top": {"common", "contract", "export", "hw", "sim", "boards", "train", "top"},
}
TORCH_FREE = ("common", "contract", "export", "hw", "sim", "boards")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [p for p in rel.with_suffix("").parts[1:] if p != "__init__"]
    return ".".join([FOLDERS[rel.parts[0]], *parts])


def layer_of(module: str) -> str | None:
    """The layer of a project module, or None for anything outside the project."""
    if module == "fedxnor" or not module.startswith("fedxnor."):
        return None if module != "fedxnor" else "top"
    if any(module == c or module.startswith(c + ".") for c in COMMON):
        return "common"
    part = module.split(".")[1]
    return part if part in ALLOWED and part not in ("common", "top") else "top"


def imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in the file, wherever it stands."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the package
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.append((base, node.lineno))
            out += [(f"{base}.{a.name}", node.lineno) for a in node.names if layer_of(f"{base}.{a.name}") == "common"]
    return out


def project_files():
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def violations() -> list[str]:
    bad = []
    for path in project_files():
        src = module_name(path)
        src_layer = layer_of(src)
        for dst, line in imports(path, src):
            rel = f"{path.relative_to(ROOT)}:{line}"
            if dst.split(".")[0] == "torch" and src_layer in TORCH_FREE:
                bad.append(f"{rel}: {src} ({src_layer}) imports torch")
            dst_layer = layer_of(dst)
            if dst_layer and dst_layer not in ALLOWED[src_layer]:
                bad.append(f"{rel}: {src} ({src_layer}) imports {dst} ({dst_layer})")
    return bad


def test_every_import_goes_down_the_layers():
    assert violations() == []


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: an export module importing train, or hw importing torch, is reported."""
    fake = ROOT / "export" / "_architecture_probe.py"
    fake.write_text("def f():\n    from fedxnor.train.models import get_config\n    import torch\n")
    try:
        found = [v for v in violations() if "_architecture_probe" in v]
    finally:
        fake.unlink()
    assert len(found) == 2 and "imports fedxnor.train.models (train)" in found[0] and "imports torch" in found[1]


BLOCK_TORCH = """
import importlib, pkgutil, sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
import fedxnor
for pkg in {packages!r}:
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
print("ok")
"""


@pytest.mark.parametrize("packages", [["fedxnor.contract", "fedxnor.export"], ["fedxnor.hw"], ["fedxnor.sim"],
                                      ["fedxnor.boards"]])
def test_stages_import_with_torch_unimportable(packages):
    """Every module of these packages imports in a Python where `import torch` fails."""
    r = subprocess.run([sys.executable, "-c", BLOCK_TORCH.format(packages=packages)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]


def test_test_files_have_unique_names():
    """pytest imports test modules by basename (rootdir conftest, no packages): two test_x.py in different folders
    stop the whole suite at collection."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
