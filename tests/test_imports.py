"""The module import graph, built with ``ast`` from every import statement (function-level imports
included): no cycles, no module importing another module's private name, and the package arrows
of the design (colonsim imports no learning package; depth and adapt do not import each other)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("colonsim", "adapt", "depth", "experiment", "training")


def modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages."""
    out = {}
    for pkg in packages:
        for f in sorted((root / pkg).rglob("*.py")):
            parts = f.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement in the file, at any depth.
    ``from pkg import sub`` is an import of the submodule ``pkg.sub`` when it is one."""
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.append((sub, None) if sub in mods else (mod, a.name))
    return found


def graph(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """The edges between the project's own modules, and the private-name imports across modules."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for m, f in mods.items():
        for target, imported in imports_of(m, f, mods):
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]
            if target not in mods or target == m:
                continue
            edges[m].add(target)
            leaf = target.rsplit(".", 1)[-1]
            if imported and imported.startswith("_") and not imported.startswith("__") and not leaf.startswith("_"):
                private.append(f"{m} imports {target}.{imported}")
    return edges, private


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


MODS = modules()
EDGES, PRIVATE = graph(MODS)


def test_the_graph_sees_the_packages():
    assert "colonsim.run.generate" in MODS and "depth.train" in MODS and "adapt.train" in MODS
    assert "colonsim.data.h5io" in EDGES["colonsim.run.generate"]


def test_no_import_cycles():
    assert cycles(EDGES) == []


def test_no_private_names_imported_across_modules():
    assert PRIVATE == []


@pytest.mark.parametrize("src, dst", [("depth", "adapt"), ("adapt", "depth"), ("colonsim", "adapt"),
                                      ("colonsim", "depth"), ("colonsim", "experiment"),
                                      ("colonsim", "training"), ("training", "adapt"),
                                      ("training", "depth")])
def test_package_arrows_point_one_way(src, dst):
    bad = sorted(f"{a} -> {b}" for a, bs in EDGES.items() for b in bs
                 if a.split(".")[0] == src and b.split(".")[0] == dst)
    assert bad == []


def test_the_checks_catch_a_cycle_and_a_private_import(tmp_path):
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from p.b import g\n")      # hidden in a function
    (pkg / "b.py").write_text("from . import a\nfrom p.c import _secret\n")
    (pkg / "c.py").write_text("_secret = 1\n")
    mods = modules(tmp_path, ("p",))
    edges, private = graph(mods)
    assert cycles(edges) == [["p.a", "p.b"]]
    assert private == ["p.b imports p.c._secret"]


def test_only_the_render_backend_imports_opengl_and_only_the_dataset_imports_torch():
    for m, f in MODS.items():
        if not m.startswith("colonsim"):
            continue
        top = {t.split(".")[0] for t, _ in imports_of(m, f, MODS)}
        if m != "colonsim.render.backend":
            assert not top & {"pyrender", "OpenGL"}, m
        if m != "colonsim.data.dataset":
            assert "torch" not in top, m
