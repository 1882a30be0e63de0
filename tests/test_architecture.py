"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml) pass, and a
violation would be reported with its chain (checked on a throwaway package that breaks each kind of
contract)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO_ROOT

LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def test_the_import_contracts_hold() -> None:
    run = subprocess.run(LINT, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


def test_an_upward_import_and_a_context_importing_another_are_reported(tmp_path: Path) -> None:
    """The same kinds of contract on a small package: one upward import, one context importing
    another. Both must fail the run, naming the modules."""
    pkg = tmp_path / "toy"
    for module, body in {
        "__init__.py": "",
        "core.py": "",
        "alpha/__init__.py": "", "alpha/service.py": "import toy.beta.model\n",
        "beta/__init__.py": "", "beta/model.py": "import toy.app\n",
        "app.py": "import toy.alpha.service\n",
    }.items():
        (pkg / module).parent.mkdir(parents=True, exist_ok=True)
        (pkg / module).write_text(body)
    (tmp_path / ".importlinter").write_text(textwrap.dedent("""
        [importlinter]
        root_package = toy

        [importlinter:contract:layers]
        name = layers
        type = layers
        layers =
            toy.app
            toy.alpha | toy.beta
            toy.core
    """))
    run = subprocess.run(LINT, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "toy.alpha is not allowed to import toy.beta" in run.stdout
    assert "toy.beta is not allowed to import toy.app" in run.stdout


def test_every_function_level_import_says_why() -> None:
    """Imports inside functions hid the old cycles; now one stays only where start-up time or a heavy
    library needs it, and says so in a comment on its line or the line before."""
    import ast

    silent = []
    for path in sorted((REPO_ROOT / "src/iotfin").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    nearby = lines[node.lineno - 2:node.end_lineno]
                    block_comment = any(ln.strip().startswith("# lazy") for ln in lines[fn.lineno:node.lineno - 1])
                    if not block_comment and not any("#" in ln for ln in nearby):
                        silent.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not silent, "function-level imports without a reason: " + ", ".join(silent)


def test_the_device_registry_speaks_the_status_codes_of_ingests_port() -> None:
    from iotfin.devices import registry
    from iotfin.ingest import ports

    assert (registry.STATUS_UNKNOWN, registry.STATUS_ACTIVE, registry.STATUS_INACTIVE, registry.STATUS_REVOKED) == (
        ports.STATUS_UNKNOWN, ports.STATUS_ACTIVE, ports.STATUS_INACTIVE, ports.STATUS_REVOKED)
