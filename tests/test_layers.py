"""The package layout is the architecture: no module imports a layer above its own (README, "Where to add things")."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "simreal"
LAYERS = [("utils",), ("render",), ("randomize",), ("envs", "registration"), ("training",),
          ("agents", "perception", "rigs", "calibration"), ("evaluation",), ("demo", "cli", "__main__")]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}


def rank(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if parts[0] == "simreal" and len(parts) > 1 else None


def test_every_package_has_a_layer():
    packages = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
                if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert packages <= set(RANK), sorted(packages - set(RANK))


def test_no_module_imports_a_layer_above_it():
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        own = rank(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            upward += [f"{path.relative_to(ROOT.parent)}:{node.lineno} imports {n}" for n in names
                       if (r := rank(n)) is not None and r > own]
    assert not upward, "\n".join(upward)
