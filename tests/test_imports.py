"""Imports flow one way: app files -> strategies/, clients/ -> fedlog/. The library imports neither,
strategies and clients never import each other, the ClientApp never imports a strategy and the
ServerApp never a client module; only the CLI (fedlog/cli.py) may reach across."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

# the importing part -> top-level packages/modules of this project it must not import
FORBIDDEN = {
    "fedlog": {"strategies", "clients", "client_app", "server_app"},
    "strategies": {"clients", "client_app", "server_app"},
    "clients": {"strategies", "client_app", "server_app"},
    "client_app": {"strategies", "server_app"},
    "server_app": {"clients", "client_app"},
}
MAY_REACH_ACROSS = {"fedlog/cli.py"}


def _imported(path: Path) -> set[str]:
    """Top-level names of every module the file imports, at any depth (function-level imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def violations(root: Path) -> list[str]:
    out = []
    for part, forbidden in FORBIDDEN.items():
        files = sorted((root / part).rglob("*.py")) if (root / part).is_dir() else [root / f"{part}.py"]
        for path in files:
            relative = path.relative_to(root).as_posix()
            if path.exists() and relative not in MAY_REACH_ACROSS:
                out += [f"{relative} imports {name}" for name in sorted(_imported(path) & forbidden)]
    return out


def test_the_project_imports_flow_one_way() -> None:
    assert violations(REPO) == []


def test_the_check_catches_a_violation(tmp_path) -> None:
    (tmp_path / "fedlog").mkdir()
    (tmp_path / "fedlog" / "silo.py").write_text("def f():\n    from strategies.common import screen\n")
    (tmp_path / "fedlog" / "cli.py").write_text("from strategies import build_strategy\n")
    (tmp_path / "client_app.py").write_text("import strategies.quality_softmax\n")
    assert violations(tmp_path) == ["fedlog/silo.py imports strategies", "client_app.py imports strategies"]


def test_a_clientapp_process_starts_without_the_heavy_optional_libraries() -> None:
    """A deployed SuperNode starts a fresh ClientApp process per message: transformers, scikit-learn and
    shap load only when the run's detector, an evaluation or an explanation needs them."""
    heavy = ("transformers", "sklearn", "shap")
    code = f"import sys, client_app; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []
