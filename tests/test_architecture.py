"""docs/ARCHITECTURE.md stays true: every module, every registry (with its module) and every command of the code is
on the page, and every command calls one podium.api function."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
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


# --- the import rules: one statement in pyproject.toml, the same words in README.md and ARCHITECTURE.md ---------------

CLI_MODULES = ("cli", "cli_deploy", "cli_tables")
CLI_ALLOWED = {"podium.api", "podium.core.errors", *(f"podium.{m}" for m in CLI_MODULES)}


def _contracts() -> list[dict]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]["contracts"]


def _cli_imports(source: str) -> set[str]:
    """Every podium module a cli file imports (`from podium import api` counts as podium.api)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "podium"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "podium":
            found |= ({f"podium.{a.name}" for a in node.names} if node.module == "podium" else {node.module})
    return found


def _cli_violations(src: Path) -> dict[str, set[str]]:
    out = {m: _cli_imports((src / f"{m}.py").read_text(encoding="utf-8")) - CLI_ALLOWED for m in CLI_MODULES}
    return {m: bad for m, bad in out.items() if bad}


def test_cli_imports_only_the_api_its_own_modules_and_the_errors() -> None:
    assert _cli_violations(SRC) == {}


def test_cli_contract_forbids_every_other_module() -> None:
    """The cli contract is an allow-list written as a forbidden list: every module of podium outside the allow-list
    must be covered, so a new package cannot slip past it the way deploy/ and serving/ once did."""
    contract = next(c for c in _contracts() if set(c.get("source_modules", [])) >= {"podium.cli"})
    assert sorted(contract["source_modules"]) == sorted(f"podium.{m}" for m in CLI_MODULES)
    modules = {("podium/" + p.relative_to(SRC).with_suffix("").as_posix()).removesuffix("/__init__").replace("/", ".")
               for p in SRC.rglob("*.py") if p.name != "__main__.py"}
    allowed = CLI_ALLOWED | {"podium", "podium.core"}
    uncovered = sorted(m for m in modules - allowed
                       if not any(m == f or m.startswith(f + ".") for f in contract["forbidden_modules"]))
    assert uncovered == [], f"add these to the cli contract's forbidden_modules in pyproject.toml: {uncovered}"


def _layers() -> list[str]:
    contract = next(c for c in _contracts() if c["type"] == "layers" and "podium.cli" in c["layers"])
    return contract["layers"]


def test_the_rules_read_the_same_in_pyproject_readme_and_architecture() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    page = " ".join(PAGE.split())
    for contract in _contracts():
        assert contract["name"] in readme, f"README.md lacks the rule {contract['name']!r}"
        assert contract["name"] in page, f"docs/ARCHITECTURE.md lacks the rule {contract['name']!r}"


def test_the_layer_diagrams_follow_the_contract() -> None:
    """README's chain and ARCHITECTURE.md's layer block list the contract's layers in its order."""
    short = [" | ".join(m.removeprefix("podium.") for m in layer.split(" | ")) for layer in _layers()]
    block = PAGE.split("<!-- layers -->")[1].split("```")[1]
    names = [line.split("  ")[0].strip() for line in block.strip().splitlines()]
    assert names == short
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    chain = " ".join(readme.split("<!-- layers -->")[1].split("```")[1].split())
    assert chain == " -> ".join(short)


def _lint_copy(tmp_path: Path, edit: tuple[str, str]) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the package with one line added to one module."""
    shutil.copytree(SRC, tmp_path / "src" / "podium", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "podium" / edit[0]
    target.write_text(target.read_text(encoding="utf-8") + f"\n{edit[1]}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_cli_to_deploy_import_fails_the_build(tmp_path: Path) -> None:
    line = "from podium.deploy.writer import export_model  # noqa"
    result = _lint_copy(tmp_path, ("cli.py", line))
    assert result.returncode != 0 and "The command line only parses and prints" in result.stdout, result.stdout[-2000:]
    assert _cli_violations(tmp_path / "src" / "podium") == {"cli": {"podium.deploy.writer"}}


def test_a_deploy_to_pipeline_import_fails_the_build(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path, ("deploy/__init__.py", "import podium.pipeline  # noqa"))
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]
    assert "podium.deploy -> podium.pipeline" in result.stdout


def test_the_unedited_copy_passes(tmp_path: Path) -> None:
    """The two tests above fail for the added line, not for the copy."""
    result = _lint_copy(tmp_path, ("deploy/__init__.py", "# nothing"))
    assert result.returncode == 0, result.stdout[-2000:]


# --- where does a new X go: the table names a module that holds the registry --------------------------------------

NEW_KINDS = ("metric", "task", "loss", "submission format", "layout", "blend", "weight source", "export target")


def test_where_a_new_variant_goes() -> None:
    """Each row of "Where does a new X go" names a module that defines the registry a new X is registered in."""
    section = PAGE.split("## Where does a new X go")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith(("| a new", "| ---"))]
    kinds = {row[0] for row in rows}
    assert set(NEW_KINDS) <= kinds, f"missing rows: {sorted(set(NEW_KINDS) - kinds)}"
    for kind, module, registry, *_ in rows:
        path = SRC / module.strip("`")
        assert path.is_file(), f"{kind}: {module} does not exist"
        name = registry.strip("`")
        assert re.search(rf"^{name}(?:: [^=\n]+)? = Registry\(", path.read_text(encoding="utf-8"), re.M), \
            f"{kind}: {module} does not define the registry {name}"
