"""Image paths from chat tools resolve only inside the allowed roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgraph.agents.paths import resolve_image_path
from groundgraph.tools.errors import InputError, PathNotAllowedError


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(b"png")
    (root / "sub" / "b.png").write_bytes(b"png")
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"secret")
    sibling = tmp_path / "images2"  # shares the root's name as a string prefix
    sibling.mkdir()
    (sibling / "c.png").write_bytes(b"png")
    return {"root": root, "outside": outside, "sibling": sibling, "tmp": tmp_path}


def test_no_roots_refuses_every_path_and_says_how_to_configure(tree: dict[str, Path]) -> None:
    with pytest.raises(PathNotAllowedError, match="allowed_image_roots") as info:
        resolve_image_path(tree["root"] / "a.png", [])
    assert "GROUNDGRAPH_ALLOWED_IMAGE_ROOTS" in str(info.value)


def test_absolute_and_relative_paths_inside_a_root_resolve(tree: dict[str, Path]) -> None:
    root = tree["root"]
    assert resolve_image_path(root / "a.png", [root]) == (root / "a.png").resolve()
    assert resolve_image_path("sub/b.png", [root]) == (root / "sub" / "b.png").resolve()
    assert resolve_image_path("sub/../a.png", [root]) == (root / "a.png").resolve()  # stays inside


def test_relative_path_is_looked_up_in_each_root(tree: dict[str, Path]) -> None:
    assert resolve_image_path("c.png", [tree["root"], tree["sibling"]]) == (tree["sibling"] / "c.png").resolve()


@pytest.mark.parametrize("path", ["../secret.png", "sub/../../secret.png", "../images2/c.png"])
def test_dotdot_escapes_are_refused(tree: dict[str, Path], path: str) -> None:
    with pytest.raises(PathNotAllowedError, match="outside the allowed image roots"):
        resolve_image_path(path, [tree["root"]])


def test_absolute_path_elsewhere_is_refused(tree: dict[str, Path]) -> None:
    with pytest.raises(PathNotAllowedError):
        resolve_image_path(tree["outside"], [tree["root"]])
    with pytest.raises(PathNotAllowedError):  # a string prefix of the root is not inside it
        resolve_image_path(tree["sibling"] / "c.png", [tree["root"]])


def test_symlink_leading_outside_is_refused(tree: dict[str, Path]) -> None:
    link = tree["root"] / "link.png"
    link.symlink_to(tree["outside"])
    with pytest.raises(PathNotAllowedError):
        resolve_image_path("link.png", [tree["root"]])
    dir_link = tree["root"] / "up"
    dir_link.symlink_to(tree["tmp"], target_is_directory=True)
    with pytest.raises(PathNotAllowedError):
        resolve_image_path("up/secret.png", [tree["root"]])


def test_root_given_through_a_symlink_still_works(tree: dict[str, Path]) -> None:
    alias = tree["tmp"] / "alias"
    alias.symlink_to(tree["root"], target_is_directory=True)
    assert resolve_image_path(alias / "a.png", [alias]) == (tree["root"] / "a.png").resolve()
    assert resolve_image_path(tree["root"] / "a.png", [alias]) == (tree["root"] / "a.png").resolve()


def test_missing_file_or_directory_inside_a_root_is_an_input_error(tree: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="not found") as info:
        resolve_image_path("nope.png", [tree["root"]])
    assert not isinstance(info.value, PathNotAllowedError)
    with pytest.raises(InputError, match="not a file"):
        resolve_image_path("sub", [tree["root"]])


def test_missing_file_outside_the_roots_does_not_reveal_existence(tree: dict[str, Path]) -> None:
    with pytest.raises(PathNotAllowedError):
        resolve_image_path(tree["tmp"] / "no-such.png", [tree["root"]])


@pytest.mark.parametrize("bad", ["", "   ", "a\x00.png"])
def test_empty_or_nul_paths_are_input_errors(tree: dict[str, Path], bad: str) -> None:
    with pytest.raises(InputError):
        resolve_image_path(bad, [tree["root"]])
