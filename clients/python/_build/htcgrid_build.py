"""A PEP 517 build backend for this one pure-Python package, standard library only.

pip builds packages in an isolated environment into which it installs the build requirements from the index; with no
index reachable (offline machines) a setuptools build fails there. This backend needs nothing installed, so
``pip install ./clients/python`` works offline on any Python 3.9+. It builds a py3-none-any wheel of ``htcgrid/``, an
editable wheel (PEP 660) and an sdist; metadata comes from ``pyproject.toml``.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "htcgrid"
# Fixed timestamps: the same sources give the same wheel.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _project() -> Dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        text = f.read().decode("utf-8")
    try:
        import tomllib  # Python 3.11+

        return dict(tomllib.loads(text)["project"])
    except ImportError:
        return _read_project_table(text)


def _read_project_table(text: str) -> Dict[str, Any]:
    """The [project] keys this pyproject.toml uses (strings, and lists of strings), for Pythons before tomllib."""
    project: Dict[str, Any] = {}
    extras: Dict[str, List[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]")
            continue
        m = re.match(r'^([A-Za-z0-9_-]+)\s*=\s*(.+)$', line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        parsed: Any = re.findall(r'"([^"]*)"', value) if value.startswith("[") else value.strip('"')
        if section == "project":
            project[key] = parsed
        elif section == "project.optional-dependencies":
            extras[key] = parsed
    project["optional-dependencies"] = extras
    return project


def _dist_name(project: Dict[str, Any]) -> str:
    return re.sub(r"[-_.]+", "_", project["name"]).lower()


def _metadata(project: Dict[str, Any]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        "Name: %s" % project["name"],
        "Version: %s" % project["version"],
        "Summary: %s" % project.get("description", ""),
        "License: %s" % project.get("license", ""),
    ]
    if project.get("requires-python"):
        lines.append("Requires-Python: %s" % project["requires-python"])
    for requirement in project.get("dependencies", []):
        lines.append("Requires-Dist: %s" % requirement)
    for extra, requirements in sorted(project.get("optional-dependencies", {}).items()):
        lines.append("Provides-Extra: %s" % extra)
        for requirement in requirements:
            lines.append('Requires-Dist: %s; extra == "%s"' % (requirement, extra))
    return "\n".join(lines) + "\n"


def _package_files() -> List[Tuple[str, str]]:
    files = []
    for folder, dirs, names in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            files.append((os.path.relpath(path, ROOT).replace(os.sep, "/"), path))
    return files


def _write_wheel(wheel_directory: str, entries: List[Tuple[str, bytes]]) -> str:
    project = _project()
    dist = "%s-%s" % (_dist_name(project), project["version"])
    info = "%s.dist-info" % dist
    entries = entries + [
        ("%s/METADATA" % info, _metadata(project).encode("utf-8")),
        ("%s/WHEEL" % info, b"Wheel-Version: 1.0\nGenerator: htcgrid_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = []
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
        record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
    record.append("%s/RECORD,," % info)
    entries.append(("%s/RECORD" % info, ("\n".join(record) + "\n").encode("utf-8")))
    filename = "%s-py3-none-any.whl" % dist
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    return filename


# --- PEP 517 hooks ---------------------------------------------------------------------------------------------


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def build_wheel(
    wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None, metadata_directory: Optional[str] = None
) -> str:
    entries = []
    for name, path in _package_files():
        with open(path, "rb") as f:
            entries.append((name, f.read()))
    return _write_wheel(wheel_directory, entries)


def build_editable(
    wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None, metadata_directory: Optional[str] = None
) -> str:
    """PEP 660: a wheel holding only a .pth file that puts this folder on sys.path."""
    return _write_wheel(wheel_directory, [("%s_editable.pth" % PACKAGE, (ROOT + "\n").encode("utf-8"))])


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = _project()
    base = "%s-%s" % (_dist_name(project), project["version"])
    filename = base + ".tar.gz"
    extra = [("pyproject.toml", os.path.join(ROOT, "pyproject.toml")), ("README.md", os.path.join(ROOT, "README.md"))]
    extra += [("_build/htcgrid_build.py", os.path.abspath(__file__))]
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, path in _package_files() + [e for e in extra if os.path.exists(e[1])]:
            tar.add(path, arcname="%s/%s" % (base, name), recursive=False)
        info = tarfile.TarInfo("%s/PKG-INFO" % base)
        data = _metadata(project).encode("utf-8")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return filename
