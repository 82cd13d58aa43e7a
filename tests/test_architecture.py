"""docs/ARCHITECTURE.md stays true: every module, every registry (with its module) and every command of the code is
on the page, and every command calls one podium.api function."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "podium"
PAGE = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")


def test_every_module_is_on_the_page() -> None:
    modules = sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
                     if p.name not in ("__main__.py",) and not (p.name == "__init__.py" and len(p.read_text()) < 400))
    missing = [m for m in modules if f"`{m}`" not in PAGE]
    assert missing == [], f"modules missing from docs/ARCHITECTURE.md: {missing}"


def test_every_registry_is_on_the_page_with_its_module() -> None:
    found = {}
    for path in SRC.rglob("*.py"):
        for name in re.findall(r"^([A-Z_]+)(?:: [^=\n]+)? = Registry\(", path.read_text(encoding="utf-8"), re.M):
            found[name] = path.relative_to(SRC).as_posix()
    assert len(found) >= 26
    rows = [line for line in PAGE.splitlines() if line.startswith("| ")]
    missing = [f"{n} ({m})" for n, m in sorted(found.items())
               if not any(f"`{n}`" in row and f"`{m}`" in row for row in rows)]
    assert missing == [], f"registries missing from docs/ARCHITECTURE.md's table: {missing}"


def _commands() -> dict[str, list[str]]:
    """Each typer command of cli.py and the podium.api names it imports."""
    tree = ast.parse((SRC / "cli.py").read_text(encoding="utf-8"))
    deploy = ast.parse((SRC / "cli_deploy.py").read_text(encoding="utf-8"))  # plain functions registered by cli.py
    out = {}
    for fn in [*tree.body, *deploy.body]:
        if isinstance(fn, ast.FunctionDef) and (fn in deploy.body
                                                or any("command" in ast.unparse(d) for d in fn.decorator_list)):
            out[fn.name] = [
                *(a.name for n in ast.walk(fn) if isinstance(n, ast.ImportFrom) and n.module == "podium.api"
                  for a in n.names),
                *("api" for n in ast.walk(fn) if isinstance(n, ast.ImportFrom) and n.module == "podium"
                  and any(a.name == "api" for a in n.names)),
            ]
    return out


def test_every_command_calls_the_api_and_is_on_the_page() -> None:
    commands = _commands()
    assert len(commands) >= 13
    assert {name: uses for name, uses in commands.items() if not uses} == {}
    missing = [name for name in commands if f"| `{name}` | `api." not in PAGE]
    assert missing == [], f"commands missing from docs/ARCHITECTURE.md's command table: {missing}"
