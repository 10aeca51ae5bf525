"""The layers point one way: the CLI is an edge over the services, so nothing beside it
imports it. A parser or a renderer two edges share lives below both (``scheduler.timeutil``,
``scheduler.units``, ``scheduler.policies``, ``scheduler.present``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: files that may import the CLI, and why
ENTRY_POINTS = {
    "carbonshift/__main__.py": "python -m carbonshift runs the CLI",
    "carbonshift/__init__.py": "carbonshift.main is the CLI's entry point, imported on first use",
}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module name an ``import`` or ``from ... import`` in ``tree`` names, relative
    imports resolved against ``module``; ``from a import b`` also yields ``a.b``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def _sources() -> list[Path]:
    files = [p for p in (ROOT / "scheduler").rglob("*.py") if "cli" not in p.relative_to(ROOT / "scheduler").parts]
    return sorted(files + list((ROOT / "carbonshift").rglob("*.py")))


def test_nothing_outside_the_cli_imports_the_cli() -> None:
    offenders: dict[str, str] = {}
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel in ENTRY_POINTS:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for line, name in _imported(tree, _module_of(path), path.name == "__init__.py"):
            if name == "scheduler.cli" or name.startswith("scheduler.cli."):
                offenders.setdefault(f"{rel}:{line}", name)
    assert not offenders, "the CLI is an edge; move what these need below it:\n" + "\n".join(
        f"{where} imports {name}" for where, name in offenders.items())


def test_the_walk_sees_every_layer_and_catches_a_relative_import() -> None:
    seen = {p.relative_to(ROOT).parts[:2] for p in _sources()}
    for folder in (("scheduler", "web"), ("scheduler", "storage"), ("scheduler", "executors"),
                   ("scheduler", "api.py"), ("carbonshift", "_window.py")):
        assert folder in seen
    tree = ast.parse("from ..cli.jobs import submit\nfrom . import cli\n")
    assert {n for _, n in _imported(tree, "scheduler.web.page", False)} >= {"scheduler.cli.jobs"}
    assert "scheduler.cli" in {n for _, n in _imported(tree, "scheduler.api", False)}


#: what the domain (nouns and pure rules) may import: the standard library's pure parts, the
#: ground floor's value types and the scheduler's own pure helpers
_DOMAIN_MAY_IMPORT = ("scheduler.domain", "scheduler.errors", "scheduler.text", "scheduler.timeutil", "scheduler.units",
                      "intensity.model", "probes.model")
_NO_IO = {"os", "io", "socket", "subprocess", "sqlite3", "sqlalchemy", "requests", "pathlib", "shutil",
          "threading", "time"}


def test_the_domain_does_no_io_and_reads_no_clock() -> None:
    offenders: list[str] = []
    for path in sorted((ROOT / "scheduler" / "domain").glob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for line, name in _imported(tree, _module_of(path), path.name == "__init__.py"):
            top = name.split(".")[0]
            if top in ("scheduler", "intensity", "probes"):
                if not any(name == m or name.startswith(m + ".") for m in _DOMAIN_MAY_IMPORT):
                    offenders.append(f"{rel}:{line} imports {name}")
            elif top in _NO_IO:
                offenders.append(f"{rel}:{line} imports {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today") and (
                    isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date")):
                offenders.append(f"{rel}:{node.lineno} reads the clock")
    assert not offenders, "\n".join(offenders)


def test_the_app_is_a_composition_root_only() -> None:
    """``scheduler/app.py`` defines the App and nothing else: rules live with their kind
    (storage.location, clock, users, executors.registry) and are only re-exported here."""
    tree = ast.parse((ROOT / "scheduler" / "app.py").read_text(encoding="utf-8"))
    defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    assert defined == ["App"]
