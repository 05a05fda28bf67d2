"""Where the shared reference data lie: ``shared/`` beside the repository's checkout.

In CI a copy of ``shared/`` sits next to the clone (``<repo>/../shared``). A git worktree's
checkout may live elsewhere, so the main checkout (the parent of git's common directory) is
tried too. ``SCALINGLAB_SHARED`` overrides both.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_dir() -> Path | None:
    """The ``shared/`` directory beside the repository, or None when there is none."""
    if os.environ.get("SCALINGLAB_SHARED"):
        return Path(os.environ["SCALINGLAB_SHARED"])
    candidates = [REPO_ROOT.parent / "shared"]
    try:
        common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=10, check=True)
        candidates.append((REPO_ROOT / common.stdout.strip()).resolve().parent.parent / "shared")
    except (OSError, subprocess.SubprocessError):
        pass
    return next((c for c in candidates if c.is_dir()), None)


def chinchilla_csv() -> Path | None:
    """Epoch AI's digitised Chinchilla runs, if the shared reference data are present."""
    shared = shared_dir()
    path = shared / "reference" / "chinchilla" / "svg_extracted_data.csv" if shared else None
    return path if path is not None and path.is_file() else None
