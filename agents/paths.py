"""Image paths from chat tools and servers: readable only inside the configured allowed roots.

A chat model (or whoever talks to the MCP or LangGraph server) chooses the path, so it is
untrusted: a path is accepted only when its real location, after resolving ``..`` and every
symlink, lies inside one of ``Settings.allowed_image_roots``. Relative paths are taken relative
to each root in turn. No roots configured means no image paths at all.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from groundgraph.tools.errors import InputError, PathNotAllowedError
from groundgraph.tools.images import shown

HOW_TO_CONFIGURE = ("set allowed_image_roots = [\"/path/to/images\"] in groundgraph.toml, or the environment "
                    "variable GROUNDGRAPH_ALLOWED_IMAGE_ROOTS='[\"/path/to/images\"]'")


def _real_roots(roots: Sequence[str | os.PathLike[str]]) -> list[Path]:
    # a root that is itself a symlink counts as where it points
    return [Path(r).expanduser().resolve() for r in roots]


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_image_path(path: str | os.PathLike[str], roots: Sequence[str | os.PathLike[str]]) -> Path:
    """The real path of an image file inside ``roots``; PathNotAllowedError or InputError otherwise.

    Containment is checked on the fully resolved path, so ``..`` segments and symlinks that lead
    outside every root are refused; a file outside the roots is refused without saying whether
    it exists.
    """
    if not isinstance(path, str | os.PathLike):  # posted JSON may hold anything
        raise InputError(f"image path must be a string, not {type(path).__name__}")
    raw = os.fspath(path)
    if not isinstance(raw, str):
        raise InputError("image path must be text, not bytes")
    if not raw.strip():
        raise InputError("image path is empty")
    if "\x00" in raw:
        raise InputError("image path contains a NUL byte")
    if not roots:
        raise PathNotAllowedError(f"image paths are refused here: no allowed image roots are configured; "
                                  f"{HOW_TO_CONFIGURE}")
    try:
        return _resolve(raw, _real_roots(roots))
    except OSError as exc:  # a name too long for the file system, a loop of symlinks...
        raise InputError(f"image path cannot be used: {exc.strerror or type(exc).__name__}") from None
    except RuntimeError:  # "~someone" whose home directory is unknown
        raise InputError(f"image path cannot be used: cannot expand {raw.split('/')[0]!r}") from None


def _resolve(raw: str, real_roots: list[Path]) -> Path:
    given = Path(raw).expanduser()
    candidates = [given] if given.is_absolute() else [root / given for root in real_roots]
    for candidate in candidates:
        real = candidate.resolve()  # follows every symlink and folds "..", also for missing files
        if not _inside(real, real_roots):
            continue
        if not real.exists():
            if len(candidates) == 1:
                raise InputError(f"image file not found: {shown(raw)}")
            continue
        if not real.is_file():
            raise InputError(f"image path is not a file: {shown(raw)}")
        return real
    if not given.is_absolute() and any(_inside((r / given).resolve(), real_roots) for r in real_roots):
        raise InputError(f"image file not found in the allowed roots: {shown(raw)}")
    raise PathNotAllowedError(f"image path {raw!r} is outside the allowed image roots "
                              f"({', '.join(map(str, real_roots))}); {HOW_TO_CONFIGURE}")
