"""Content identity of input files: what caches and resumable stages are keyed by.

A cache that is keyed by a patient id or a path mixes cohorts (``P001`` exists in every
hospital's spreadsheet) and trusts a file that was replaced in place. Everything radiopath
caches is keyed by *content* instead:

* :func:`file_digest` — sha256 of a whole file (ultrasound images, masks, manifests), or for
  a large slide of its first and last MiB plus its size (a slide of several GB is identified
  without reading it; two different scans never share both ends and the size);
* :func:`slide_identity` — the same for a slide file, or, for a folder of patch images, a
  digest over every patch's name, size and leading bytes;
* :func:`digest` — sha256 of JSON-serialisable parts (options, states, coordinates).

Digests of files are memoised per (path, size, mtime) within a process.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: Files up to this size are always hashed whole.
WHOLE_FILE_LIMIT = 4 << 20
_CHUNK = 1 << 20
_MEMO: dict[tuple[str, int, int, bool], str] = {}


def digest(*parts: object) -> str:
    """sha256 (hex, 32 characters) of JSON-serialisable parts; non-JSON values via ``str``."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_sha256(path: str | Path) -> str:
    """sha256 (hex, all 64 characters) of a whole file, read in chunks and never memoised: what a
    manifest, a predictions file or a bundle's files are checked against."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | Path, full: bool = True) -> str:
    """Content hash of a file: all of it (``full``, or small files), else its ends and size."""
    p = Path(path)
    st = p.stat()
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns, full)
    if memo_key not in _MEMO:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            if full or st.st_size <= WHOLE_FILE_LIMIT:
                for chunk in iter(lambda: fh.read(_CHUNK), b""):
                    h.update(chunk)
            else:
                h.update(fh.read(_CHUNK))
                fh.seek(-_CHUNK, os.SEEK_END)
                h.update(fh.read(_CHUNK))
                h.update(str(st.st_size).encode())
        _MEMO[memo_key] = h.hexdigest()[:32]
    return _MEMO[memo_key]


def slide_identity(path: str | Path) -> str:
    """Content identity of a cytology entry: a slide file, one image, or a folder of patches.

    A folder is identified by each patch's name, size and content hash (patches are small),
    so renaming, replacing or adding a patch changes the identity.
    """
    p = Path(path)
    if p.is_dir():
        parts = [
            (f.name, f.stat().st_size, file_digest(f, full=False)) for f in sorted(p.iterdir()) if f.is_file()
        ]
        return digest("patch-folder", parts)
    return digest("slide-file", file_digest(p, full=False))


def source_digest(*modules: str) -> str:
    """Digest of the code of ``modules`` (dotted names; a package means all its files).

    Caches key their entries by this, so a change to the code that produces an artifact
    invalidates the artifact even when the package version stays the same. The digest is
    taken over each file's syntax tree without docstrings, so editing comments, docstrings or
    formatting does not throw a cache away; changing a statement does.
    """
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            h.update(f"{name}:missing".encode())
            continue
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]
        for f in files:
            h.update(f"{name}:{f.relative_to(origin.parent)}:".encode())
            h.update(_code_of(f).encode())
    return h.hexdigest()[:16]


#: ``_code_of`` results by (path, size, mtime): every slide and feature group keys its cache
#: entry by the code's digest, and parsing the same files once per slide cost 0.2 s each
#: (60 s of a 300-patient run's 66 s of cache lookups); an edited file has a new key.
_CODE_MEMO: dict[tuple[str, int, int], str] = {}


def _code_of(path: Path) -> str:
    """A file's syntax tree without docstrings (its source text when it does not parse),
    memoised per file version (:data:`_CODE_MEMO`)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _CODE_MEMO:
        _CODE_MEMO[key] = _parse_code(path)
    return _CODE_MEMO[key]


def _parse_code(path: Path) -> str:
    import ast

    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)
