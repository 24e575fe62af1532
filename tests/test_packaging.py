"""The package as tools and users see it: every room linked into ``songcorpus``, a wheel that holds them all.

docs/design.md, "Rooms": each top-level room folder is the package ``songcorpus.<room>``, reached through the link
``songcorpus/<room> -> ../<room>``. Setuptools' discovery follows the links, so nothing lists the rooms.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "songcorpus"


def rooms() -> list[str]:
    """The folders linked into the package."""
    return sorted(p.name for p in PACKAGE.iterdir() if p.is_symlink())


def top_level_packages() -> set[str]:
    """Folders of the project root with an ``__init__.py``, other than the package itself and the tests."""
    return {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"songcorpus", "tests"}


def source_modules() -> set[str]:
    """Every module of the package in the source tree, reached through the room links (``__main__`` aside)."""
    modules = set()
    for dirpath, dirnames, filenames in os.walk(PACKAGE, followlinks=True):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        parts = Path(dirpath).relative_to(ROOT).parts
        for name in filenames:
            if name.endswith(".py") and name != "__main__.py":
                stem = name.removesuffix(".py")
                modules.add(".".join(parts if stem == "__init__" else (*parts, stem)))
    return modules


def test_every_room_is_linked_into_the_package():
    """A top-level Python package other than ``tests`` is a room, linked as songcorpus/<name> -> ../<name>."""
    unlinked = sorted(top_level_packages() - set(rooms()))
    assert not unlinked, f"link each room into the package (cd songcorpus && ln -s ../ROOM ROOM): {unlinked}"
    for room in rooms():
        link = PACKAGE / room
        assert os.readlink(link) == f"../{room}", f"songcorpus/{room} must link to ../{room}"
        assert (link / "__init__.py").is_file(), f"{room}/ needs an __init__.py"


def test_every_package_folder_has_an_init():
    """Setuptools packages only folders with ``__init__.py``; one without would import here but miss the wheel."""
    missing = [
        str(Path(dirpath).relative_to(ROOT))
        for dirpath, dirnames, filenames in os.walk(PACKAGE, followlinks=True)
        if any(name.endswith(".py") for name in filenames) and "__init__.py" not in filenames
    ]
    assert not missing, f"add an __init__.py to {missing}"


def test_rooms_are_never_imported_by_their_bare_name():
    """The project root is on sys.path, so `import pipeline` would load a second copy of songcorpus.pipeline."""
    banned = top_level_packages() | set(rooms())
    offenders = []
    for folder in [*banned, "songcorpus", "tests", "bench"]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in banned
                ]
    assert not offenders, "import the rooms as songcorpus.<room>:\n" + "\n".join(offenders)


def test_editable_install_is_a_plain_path_entry():
    """Type checkers and IDEs follow a path entry in a .pth file, not setuptools' import-hook finder."""
    pth = sorted(Path(sysconfig.get_paths()["purelib"]).glob("__editable__.songcorpus-*.pth"))
    assert len(pth) == 1, "songcorpus is not installed in editable mode here: run scripts/bootstrap.sh"
    assert pth[0].read_text().strip() == str(ROOT)


def test_built_wheel_installs_and_imports_every_module(tmp_path: Path):
    """Build the wheel (offline: the locked setuptools), install it alone into a clean venv, import it all."""
    uv = ROOT / ".tools" / "uv" / "bin" / "uv"
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"UV_OFFLINE": "1", "UV_NO_CONFIG": "1"}

    def run(*args: str | Path) -> str:
        done = subprocess.run(args, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # sdist first, then the wheel from the unpacked sdist: what a release does, and no stale build/ reused
    run(uv, "build", "--no-build-isolation", "--python", sys.executable, "--out-dir", dist, ROOT)
    (wheel,) = dist.glob("songcorpus-*.whl")
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    run(uv, "pip", "install", "--no-deps", "--python", venv / "bin" / "python", wheel)
    # the dependencies come from the project's environment, as a plain path entry (its .pth files unread)
    clean_site = next((venv / "lib").glob("python3.*/site-packages"))
    (clean_site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    script = """if True:
        import importlib, json, pkgutil, sys
        import songcorpus
        walked = pkgutil.walk_packages(songcorpus.__path__, "songcorpus.")
        names = [m.name for m in walked if not m.name.endswith(".__main__")]  # __main__ runs the CLI
        for name in names:
            importlib.import_module(name)
        print(json.dumps({"file": songcorpus.__file__, "modules": names, "path": sys.path}))
    """
    found = json.loads(run(venv / "bin" / "python", "-I", "-c", script).splitlines()[-1])
    assert Path(found["file"]).is_relative_to(clean_site), found["file"]
    assert str(ROOT) not in found["path"]
    expected = source_modules() - {"songcorpus"}
    assert sorted(expected - set(found["modules"])) == [], "left out of the wheel"
    assert set(found["modules"]) == expected

    assert run(venv / "bin" / "songcorpus", "--help").startswith("usage: songcorpus ")
    assert run(venv / "bin" / "python", "-I", "-m", "songcorpus", "--help").startswith("usage: ")
