"""The wheel's build step (pyproject.toml ``[tool.setuptools.cmdclass]``).

The migrations live at the top of the source tree (``migrations/``, Alembic's layout); an
installed package has no source tree, so the wheel carries them inside the package, as
``idp/migrations``, where ``idp.app`` looks first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools.command.build_py import build_py as _build_py

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class build_py(_build_py):  # named as the command it replaces
    """setuptools' ``build_py``, then the migrations copied into the built ``idp`` package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install runs from the source tree's migrations/
            return
        target = Path(self.build_lib) / "idp" / "migrations"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(MIGRATIONS, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
