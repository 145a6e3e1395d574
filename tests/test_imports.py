"""The package's shape: no import cycle at all (imports inside functions count), packages that import only
downwards, few top-level modules, and each package saying what lives in it and what it may import."""
from __future__ import annotations

import ast


from import_graph import PACKAGE, ROOT, cycles, edges, module_names, package_graph



def test_no_module_imports_itself_back_through_any_chain():
    assert cycles(edges()) == []


def test_packages_import_only_downwards():
    assert cycles(package_graph(edges())) == []


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The check would miss the cycles it exists for if a function-level import were invisible to it."""
    pkg = tmp_path / PACKAGE
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("def f():\n    from lopt_core.b import y\n")
    (pkg / "b.py").write_text("from lopt_core.a import x\nfrom typing import TYPE_CHECKING\n"
                              "if TYPE_CHECKING:\n    from lopt_core.c import z\n")
    (pkg / "c.py").write_text("")
    g = edges(tmp_path)
    assert cycles(g) == [["lopt_core.a.x", "lopt_core.b"]]
    assert "lopt_core.c" not in g["lopt_core.b"]  # only under TYPE_CHECKING: never runs


def test_few_modules_at_the_top_and_every_package_says_what_it_holds():
    mods = module_names()
    top = [m for m in mods if m.count(".") == 1 and (ROOT / PACKAGE / (m.split(".")[1] + ".py")).is_file()]
    assert len(top) <= 15, top
    for pkg in (ROOT / PACKAGE).iterdir():
        init = pkg / "__init__.py"
        if pkg.is_dir() and init.is_file():
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            assert len(doc) > 40 and "may import" in doc.lower(), f"{init}: say what lives here and what it may import"


def test_paths_the_code_builds_from_its_own_location_exist(tmp_path, monkeypatch, sentiment_csv):
    """A module that moved to a sub-package must not look for assets/ or the package one folder too high or low
    (the shipped reference sweep was once silently not found after a move)."""
    from lopt_core.data import preview
    from lopt_core.sweeps import presets, results_file
    from lopt_core.ui import common
    assert any(results_file.ATLAS.glob("*.json")) and presets.PRESETS_FILE.is_file() and common.ASSETS.is_dir()
    monkeypatch.chdir(tmp_path)  # the preview's child process finds lopt_core from anywhere, not from the cwd
    monkeypatch.delenv("PYTHONPATH", raising=False)
    facts = preview._read_in_child((str(sentiment_csv), "text", "label", None), lambda n: None)
    assert facts.labels == ("neg", "pos")
