"""The top-level tokenizers/ folder holds JSON recipes; it must never shadow Hugging Face's
`tokenizers` package, which transformers imports."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_tokenizers_is_hugging_face_with_repo_root_on_path():
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import tokenizers; "
        "print(tokenizers.__file__); from tokenizers import Tokenizer"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    path = Path(out.stdout.strip())
    assert "site-packages" in path.parts or ROOT not in path.parents, path


def test_recipe_folders_hold_no_python():
    for folder in ("tokenizers", "pipelines"):
        assert not list((ROOT / folder).rglob("*.py")), f"{folder}/ must hold JSON recipes only"
